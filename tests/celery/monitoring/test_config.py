"""The Celery configuration and process command lines monitoring derives from the Settings."""

import dataclasses

import pytest
from flower.command import is_flower_option

from gpuorch.celery.app import MONITORING_TRANSPORT, SQS_TRANSPORT, create_celery_app, celery_config
from gpuorch_dev.local.procfile import load_procfile
from gpuorch.celery.monitoring import remote_control, transport
from workers import flower
from gpuorch.celery.monitoring.names import NAMESPACE_OPTION
from gpuorch.settings import Settings, SettingsError
from gpuorch_dev.local.paths import PROCFILE
from workers import control as control_worker, gpu as gpu_worker

ON = Settings(aws_endpoint_url="http://127.0.0.1:5000")
OFF = dataclasses.replace(ON, monitoring=False)
BROADCAST_KEYS = {"broker_transport", "worker_enable_remote_control", "worker_send_task_events"}


def test_monitoring_is_on_by_default_through_the_sns_transport():
    config = celery_config(ON)
    assert ON.monitoring and config["broker_transport"] == MONITORING_TRANSPORT
    options = config["broker_transport_options"]
    assert options["supports_fanout"] is True and options[NAMESPACE_OPTION] == "gpuorch"
    assert config["worker_enable_remote_control"] and config["worker_send_task_events"]
    assert config["task_send_sent_event"] is False  # a submission stays one SQS send
    assert (config["event_exchange"], config["event_queue_prefix"], config["control_exchange"]) == (
        "gpuorch.events", "gpuorch.events", "gpuorch")


def test_a_namespace_renames_every_exchange():
    config = celery_config(dataclasses.replace(ON, monitoring_namespace="staging"))
    assert config["broker_transport_options"][NAMESPACE_OPTION] == "staging"
    assert (config["event_exchange"], config["control_exchange"]) == ("staging.events", "staging")


def test_off_is_todays_plain_sqs_with_nothing_broadcast():
    config = celery_config(OFF)
    assert config["broker_transport"] == SQS_TRANSPORT  # kombu's SQS transport, surviving a failed receive
    assert "supports_fanout" not in config["broker_transport_options"]
    assert NAMESPACE_OPTION not in config["broker_transport_options"]
    assert not config["worker_enable_remote_control"] and not config["worker_send_task_events"]


def test_monitoring_changes_nothing_of_the_task_queues():
    """Late acks, prefetch 1, time limits, routes and the queues' visibility timeout are the same either way."""
    on, off = celery_config(ON), celery_config(OFF)
    assert {k: v for k, v in on.items() if k not in BROADCAST_KEYS | {"broker_transport_options"}} == {
        k: v for k, v in off.items() if k not in BROADCAST_KEYS | {"broker_transport_options"}}
    extra = {"supports_fanout", NAMESPACE_OPTION}
    assert {k: v for k, v in on["broker_transport_options"].items() if k not in extra} == off[
        "broker_transport_options"]
    assert on["task_acks_late"] and on["worker_prefetch_multiplier"] == 1
    assert on["broker_transport_options"]["visibility_timeout"] == ON.visibility_timeout


def test_the_app_connects_through_the_sns_transport_and_the_gpuorch_mailbox():
    app = create_celery_app(ON)
    try:
        with app.connection_for_write() as connection:
            assert isinstance(connection.transport, transport.Transport)  # built without reaching the server
            assert connection.supports_exchange_type("fanout")  # so a worker starts its pidbox consumer
        assert isinstance(app.control.mailbox, remote_control.Mailbox)
        assert app.control.mailbox.namespace == "gpuorch"
    finally:
        app.close()


def test_the_transport_refuses_options_without_fanout_or_namespace():
    app = create_celery_app(OFF)
    try:
        with app.connection_for_write(transport=MONITORING_TRANSPORT) as connection:
            with pytest.raises(ValueError, match="supports_fanout"):
                connection.transport  # noqa: B018 - building it is what is checked
    finally:
        app.close()


@pytest.mark.parametrize("worker", [gpu_worker, control_worker])
def test_workers_send_heartbeats_only_with_monitoring(worker):
    on, off = worker.worker_argv(ON), worker.worker_argv(OFF)
    for argv in (on, off):
        assert "--without-mingle" in argv and "--without-gossip" in argv
    assert "--without-heartbeat" not in on and "--without-heartbeat" in off


def test_flower_listens_on_loopback_with_the_gpuorch_options():
    argv = flower.flower_argv(Settings())
    assert argv == ["flower", "--address=127.0.0.1", "--port=5555", "--inspect_timeout=3000", "--enable_events=False"]
    assert all(is_flower_option(arg) for arg in argv[1:])


def test_flower_asks_for_a_login_when_basic_auth_is_set():
    settings = Settings.from_env({"GPUORCH_FLOWER_ADDRESS": "0.0.0.0", "GPUORCH_FLOWER_PORT": "8555",
                                  "GPUORCH_FLOWER_BASIC_AUTH": "ops:one,viewer:two"})
    argv = flower.flower_argv(settings)
    assert argv[1:3] == ["--address=0.0.0.0", "--port=8555"]
    assert argv[-1] == "--basic_auth=ops:one,viewer:two" and is_flower_option(argv[-1])


LOGIN = {"GPUORCH_FLOWER_BASIC_AUTH": "ops:pw"}
DEV = {"GPUORCH_FLOWER_ALLOW_NO_AUTH": "true"}


@pytest.mark.parametrize("env,problem", [
    (LOGIN, None),
    ({**LOGIN, "GPUORCH_FLOWER_ADDRESS": "0.0.0.0"}, None),
    ({**LOGIN, "GPUORCH_FLOWER_ADDRESS": "flower.internal"}, None),
    ({**LOGIN, "GPUORCH_MONITORING": "false"}, "GPUORCH_MONITORING is off"),
    # No login is refused on loopback too: every local user, port forward and rebinding browser reaches it.
    ({}, "no login"),
    ({"GPUORCH_FLOWER_ADDRESS": "0.0.0.0"}, "no login"),
    ({"GPUORCH_FLOWER_ADDRESS": ""}, "no login"),
    # Without one only when asked for, and only on loopback.
    (DEV, None),
    ({**DEV, "GPUORCH_FLOWER_ADDRESS": "::1"}, None),
    ({**DEV, "GPUORCH_FLOWER_ADDRESS": "localhost"}, None),
    ({**DEV, "GPUORCH_FLOWER_ADDRESS": "0.0.0.0"}, "for loopback only"),
    ({**DEV, "GPUORCH_FLOWER_ADDRESS": ""}, "for loopback only"),  # Flower's every interface
    ({**DEV, "GPUORCH_FLOWER_ADDRESS": "flower.internal"}, "for loopback only"),
    ({**DEV, **LOGIN, "GPUORCH_FLOWER_ADDRESS": "0.0.0.0"}, None),  # a login makes the permission moot
    # A login Flower would read as something else.
    ({"GPUORCH_FLOWER_BASIC_AUTH": "ops"}, "pair 1 is not user:password"),
    ({"GPUORCH_FLOWER_BASIC_AUTH": "ops:"}, "pair 1 is not user:password"),
    ({"GPUORCH_FLOWER_BASIC_AUTH": ":pw"}, "pair 1 is not user:password"),
    ({"GPUORCH_FLOWER_BASIC_AUTH": "ops:pw,viewer"}, "pair 2 is not user:password"),
])
def test_flower_refuses_to_start_useless_or_without_a_login(env, problem):
    problems = flower.start_problems(Settings.from_env(env))
    assert problems == [] if problem is None else (len(problems) == 1 and problem in problems[0])


def test_a_refused_login_is_not_echoed():
    [problem] = flower.start_problems(Settings.from_env({"GPUORCH_FLOWER_BASIC_AUTH": "ops:secret,admin-no-pw"}))
    assert "secret" not in problem and "admin" not in problem


def test_the_launcher_drops_the_variable_that_opens_flowers_api():
    environ = {"FLOWER_UNAUTHENTICATED_API": "true", "FLOWER_PURGE_OFFLINE_WORKERS": "60"}
    assert flower.drop_opening_variables(environ) == ["FLOWER_UNAUTHENTICATED_API"]
    assert environ == {"FLOWER_PURGE_OFFLINE_WORKERS": "60"}


@pytest.mark.parametrize("env", [{}, {"GPUORCH_FLOWER_ADDRESS": "0.0.0.0"}])
def test_flower_without_a_login_exits_2_before_starting(env, monkeypatch, caplog):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("GPUORCH_FLOWER_BASIC_AUTH", raising=False)
    monkeypatch.delenv("GPUORCH_FLOWER_ALLOW_NO_AUTH", raising=False)
    monkeypatch.setattr(flower, "create_celery_app", lambda settings: pytest.fail("Flower started"))
    monkeypatch.setattr(flower, "configure_logging", lambda *_: None)
    assert flower.main([]) == 2
    assert "refusing to start: no login" in caplog.text


def test_the_procfile_runs_flower():
    assert load_procfile(PROCFILE)["flower"] == "python -m workers.flower"


@pytest.mark.parametrize("var,value", [("GPUORCH_FLOWER_PORT", "0"), ("GPUORCH_FLOWER_PORT", "70000"),
                                       ("GPUORCH_FLOWER_INSPECT_TIMEOUT", "0")])
def test_bad_flower_settings_name_the_variable(var, value):
    with pytest.raises(SettingsError, match=var):
        Settings.from_env({var: value})
