"""The warm-up's time limit: the model bytes its workflow loads over the store's throughput, then one job's time."""

from __future__ import annotations

import pytest

from gpuorch.execution.warmup import MIB, warmup_timeout
from gpuorch.settings import Settings
from gpuorch.workflows import load_workflows
from gpuorch.workflows.models import model_files, total_bytes


@pytest.mark.parametrize("model_bytes,read_mib_s,run_s,seconds", [
    (0, 125, 120, 120.0),                  # nothing to load: the run alone
    (125 * MIB, 125, 0, 1.0),              # one second of reading
    (1000 * MIB, 500, 60, 62.0),           # provisioned throughput reads faster
    (31 * 1024 * MIB, 125, 120, 373.952),  # ~31 GiB at gp3's baseline: past ComfyUI's 300 s start-up limit
])
def test_the_limit_is_the_reading_plus_the_run(model_bytes, read_mib_s, run_s, seconds):
    assert warmup_timeout(model_bytes, read_mib_s, run_s) == pytest.approx(seconds)


def test_the_built_in_warm_up_at_gp3_baseline_needs_more_than_the_comfyui_start_up_limit():
    settings = Settings()
    workflow = load_workflows(settings.workflows_dir).get(settings.warmup_workflow)
    loaded = total_bytes(model_files([workflow], settings.models))
    seconds = warmup_timeout(loaded, settings.models_read_mib_s, settings.task_time_limit)
    assert loaded > 30 * 1000 ** 3 and seconds > settings.comfyui_ready_timeout
    assert warmup_timeout(loaded, 500, settings.task_time_limit) < seconds


def test_a_throughput_of_nothing_is_refused():
    with pytest.raises(ValueError):
        warmup_timeout(1, 0, 1)
