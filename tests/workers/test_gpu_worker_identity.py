"""A GPU worker off EC2 without an instance id refuses to start in one line, having connected to nothing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from gpuorch.settings import Settings, settings_env
from lifecycle.live.identity import read_platform_signs, runs_on_ec2
from tests.paths import REPO
from tests.support.connections import audited_env, recorded_attempts


@pytest.mark.skipif(runs_on_ec2(read_platform_signs()), reason="this machine is an EC2 instance: it would be asked")
def test_off_ec2_the_worker_refuses_without_a_connection_attempt(tmp_path):
    # Nothing answers on these endpoints: had the worker got as far as connecting, the audit log would show it.
    settings = dataclasses.replace(Settings(), aws_endpoint_url="http://127.0.0.1:9", instance_id="",
                                   instance_metadata_url="", comfyui_url="http://127.0.0.1:9", gpu_metrics_port=0,
                                   log_format="text")
    audit = tmp_path / "audit"
    env = {**os.environ, **settings_env(settings), **audited_env(audit)}

    done = subprocess.run([sys.executable, "-m", "workers.gpu"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)

    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "refusing to start" in line]
    assert "no instance id" in line and "not an EC2 instance" in line and "GPUORCH_INSTANCE_ID" in line
    assert recorded_attempts(audit) == []
