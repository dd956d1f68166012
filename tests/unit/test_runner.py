"""Pure parts of the job runner: stable names, output keys, and advisory progress writes."""

from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from gpuorch.comfyui.progress import Progress
from gpuorch.execution.runner import ProgressReporter, input_name, output_key


@pytest.mark.parametrize("subfolder,filename,key", [
    ("", "out_00001_.png", "results/J/out_00001_.png"),
    ("gpuorch/J", "out_00001_.png", "results/J/out_00001_.png"),
    ("gpuorch/J/extra", "a.webp", "results/J/extra/a.webp"),
])
def test_output_key(subfolder, filename, key):
    assert output_key("J", subfolder, filename) == key


def test_input_names_are_stable_per_job_and_index():
    assert input_name("J", 0, "PNG") == input_name("J", 0, "PNG") == "gpuorch-J-0.png"
    assert input_name("J", 1, "JPEG") == "gpuorch-J-1.jpeg"


class Jobs:
    def __init__(self, fail=False):
        self.fail, self.writes = fail, []

    def report_progress(self, job_id, percent, node):
        if self.fail:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
        self.writes.append((percent, node))


def test_progress_is_written_only_when_it_grows():
    jobs, states = Jobs(), []
    report = ProgressReporter(SimpleNamespace(jobs=jobs), "J", lambda **kw: states.append(kw["meta"]["progress"]))
    for percent in (10, 10, 5, 40):
        report(Progress(percent=percent, node_id="13", node_type="KSampler"))
    assert jobs.writes == [(10, "13 KSampler"), (40, "13 KSampler")]
    assert states == [10, 40]


def test_a_failed_progress_write_does_not_fail_the_job():
    report = ProgressReporter(SimpleNamespace(jobs=Jobs(fail=True)), "J", None)
    report(Progress(percent=10))  # logged, not raised
