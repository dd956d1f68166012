"""Invariant 5 and the queue wiring: GPU tasks on the GPU queue, everything else on the control queue."""

import dataclasses

import pytest

from gpuorch.celery_app import GPU_TASKS, GpuorchCelery, celery_config, soft_time_limit
from gpuorch.local.procfile import load_procfile
from gpuorch.settings import REPO_ROOT, Settings
from workers import control, gpu

SETTINGS = Settings()


def route(app, name):
    return app.amqp.router.route({}, name)["queue"].name


def test_gpu_tasks_go_to_the_gpu_queue_and_control_tasks_never_do():
    app = GpuorchCelery(settings_loader=lambda: SETTINGS)
    app.loader.import_default_modules()
    names = [name for name in app.tasks if name.startswith("gpuorch.")]
    assert set(GPU_TASKS) <= set(names)
    for name in names:
        expected = SETTINGS.gpu_queue if name in GPU_TASKS else SETTINGS.control_queue
        assert route(app, name) == expected, name


def test_gpu_delivery_settings():
    config = celery_config(SETTINGS)
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_soft_time_limit"] < config["task_time_limit"] == SETTINGS.task_time_limit


@pytest.mark.parametrize("hard,soft", [(120, 105), (60, 45), (20, 15), (7, 6), (2, 1), (1, 1)])
def test_the_soft_time_limit_leaves_a_short_job_most_of_its_time(hard, soft):
    assert soft_time_limit(hard) == soft


def test_every_queue_is_consumed_by_a_procfile_process():
    procfile = load_procfile(REPO_ROOT / "Procfile")
    assert procfile["gpu_worker"] == "python -m workers.gpu"
    assert procfile["control_worker"] == "python -m workers.control"
    consumed = {
        gpu.worker_argv(SETTINGS)[gpu.worker_argv(SETTINGS).index("--queues") + 1],
        control.worker_argv(SETTINGS)[control.worker_argv(SETTINGS).index("--queues") + 1],
    }
    assert consumed == {SETTINGS.gpu_queue, SETTINGS.control_queue}
    assert gpu.worker_argv(SETTINGS)[gpu.worker_argv(SETTINGS).index("--concurrency") + 1] == str(SETTINGS.gpu_pipeline_depth)


def test_local_endpoint_reaches_moto_and_aws_by_default():
    local = celery_config(Settings(aws_endpoint_url="http://127.0.0.1:5000"))
    assert local["broker_url"] == "sqs://127.0.0.1:5000"
    assert local["broker_transport_options"]["is_secure"] is False
    assert local["dynamodb_endpoint_url"] == "http://127.0.0.1:5000"
    aws = celery_config(Settings())
    assert aws["broker_url"] == "sqs://" and "dynamodb_endpoint_url" not in aws


def test_new_settings_replace_the_result_backend_built_from_the_old():
    app = GpuorchCelery(settings_loader=lambda: SETTINGS, set_as_current=False)
    assert app.backend.table_name == SETTINGS.result_table
    other = dataclasses.replace(SETTINGS, result_table="other_results")

    app.use_settings(other)

    assert app.backend.table_name == "other_results"
