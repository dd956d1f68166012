"""Invariant 5 and the queue wiring: every task routed, GPU tasks on the GPU queue, every queue consumed."""

import shlex

import pytest

from gpuorch.celery import names
from gpuorch.celery.app import celery_config, create_celery_app
from gpuorch.settings import Settings
from gpuorch_dev.local.procfile import load_procfile
from gpuorch_dev.local.paths import PROCFILE
from workers import beat, control, gpu

SETTINGS = Settings()


def route(app, name):
    return app.amqp.router.route({}, name)["queue"].name


def test_every_registered_task_is_routed_and_gpu_tasks_never_share_the_control_queue():
    app = create_celery_app(SETTINGS)
    app.loader.import_default_modules()
    # Celery shares every task defined with @app.task among all apps: only gpuorch's own modules' count here.
    registered = {name for name, task in app.tasks.items() if task.__module__.startswith("gpuorch.")}
    assert registered == set(names.GPU_TASKS) | set(names.CONTROL_TASKS)
    routes = celery_config(SETTINGS)["task_routes"]
    assert set(routes) == registered
    for name in registered:
        expected = SETTINGS.gpu_queue if name in names.GPU_TASKS else SETTINGS.control_queue
        assert route(app, name) == expected, name


def test_a_workflow_is_queued_as_its_own_task_or_run_workflow():
    assert names.task_for("camera-angle") == names.CAMERA_ANGLE
    assert names.task_for("qwen-image-edit") == names.QWEN_IMAGE_EDIT
    assert names.task_for("some-new-workflow") == names.RUN_WORKFLOW
    assert names.task_kwargs(names.RUN_WORKFLOW, "x", {"a": 1}) == {"workflow": "x", "params": {"a": 1}}
    assert names.task_kwargs(names.CAMERA_ANGLE, "camera-angle", {"a": 1}) == {"a": 1}


def test_gpu_delivery_settings():
    config = celery_config(SETTINGS)
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_soft_time_limit"] < config["task_time_limit"] == SETTINGS.task_time_limit


@pytest.mark.parametrize("hard,soft", [(120, 105), (60, 45), (20, 15), (7, 6), (2, 1), (1, 1)])
def test_the_soft_time_limit_leaves_a_short_job_most_of_its_time(hard, soft):
    assert Settings(task_time_limit=hard).soft_time_limit == soft


def consumed_queues(argv: list[str]) -> set[str]:
    return set(argv[argv.index("--queues") + 1].split(",")) if "--queues" in argv else set()


def test_every_queue_is_consumed_by_a_procfile_process():
    procfile = load_procfile(PROCFILE)
    # Each Procfile process that is a Celery worker, and the queues its command line consumes.
    workers = {"gpu_worker": gpu, "control_worker": control}
    consumed = set()
    for process, module in workers.items():
        assert shlex.split(procfile[process]) == ["python", "-m", module.__name__], process
        consumed |= consumed_queues(module.worker_argv(SETTINGS))
    declared = {queue.name for queue in celery_config(SETTINGS)["task_queues"]}
    assert consumed == declared == {names.queue_name(q, SETTINGS)
                                    for q in (names.GPU_QUEUE, names.GPU_LOW_QUEUE, names.CONTROL_QUEUE)}
    assert shlex.split(procfile["beat"]) == ["python", "-m", beat.__name__]
    assert gpu.worker_argv(SETTINGS)[gpu.worker_argv(SETTINGS).index("--concurrency") + 1] == \
        str(SETTINGS.gpu_pipeline_depth)


def test_local_endpoint_reaches_moto_and_aws_by_default():
    local = celery_config(Settings(aws_endpoint_url="http://127.0.0.1:5000"))
    assert local["broker_url"] == "sqs://127.0.0.1:5000"
    assert local["broker_transport_options"]["is_secure"] is False
    assert local["dynamodb_endpoint_url"] == "http://127.0.0.1:5000"
    aws = celery_config(Settings())
    assert aws["broker_url"] == "sqs://" and "dynamodb_endpoint_url" not in aws


def test_each_app_keeps_the_settings_it_was_built_from():
    first = create_celery_app(SETTINGS)
    other = create_celery_app(Settings(result_table="other_results"))
    assert first.backend.table_name == SETTINGS.result_table
    assert other.backend.table_name == "other_results"
