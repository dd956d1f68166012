"""`gpuorch-dev up` as a person runs it: it comes up, what it prints works, nothing leaves loopback, Ctrl-C ends it all.

One `up` (emulator) serves the tests in file order, the last of which stops it; `up --comfyui-url` runs against an
emulator the test starts, standing in for a ComfyUI that already runs on a workstation.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from gpuorch_dev.emulator import EmulatorConfig, start_in_thread
from gpuorch_dev.local.up import READY_LINE, STOPPED_LINE
from tests.conftest import wait_for
from tests.paths import REPO
from tests.support.connections import audited_env, family, is_loopback, open_remote_addresses, recorded_attempts
from tests.workflows.preflight.conftest import NO_CAMERA_LORA, held
from tests.support.model_files import builtin_folders

GPUORCH_DEV = Path(sys.executable).parent / "gpuorch-dev"
GPUORCH = Path(sys.executable).parent / "gpuorch"
UP_DEADLINE_S = 180


class Up:
    """A `gpuorch-dev up` process and every line it printed (stdout and stderr together)."""

    def __init__(self, args: list[str], run_dir: Path, env: dict[str, str] | None = None):
        self.popen = subprocess.Popen(
            [str(GPUORCH_DEV), "up", "--logs-dir", str(run_dir), *args], cwd=REPO, env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        )
        self.lines: list[str] = []
        self._fresh: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))
            self._fresh.put(line)

    def wait_for_line(self, text: str, timeout: float = UP_DEADLINE_S) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.lines:
            left = deadline - time.monotonic()
            if left <= 0 or self.popen.poll() is not None and self._fresh.empty():
                raise AssertionError(f"no line {text!r} (exit {self.popen.poll()}):\n" + "\n".join(self.lines[-60:]))
            try:
                self._fresh.get(timeout=min(left, 1.0))
            except queue.Empty:
                pass

    def printed(self, pattern: str) -> str:
        """The first group of the first printed line matching `pattern`."""
        for line in self.lines:
            if match := re.match(pattern, line):
                return match.group(1)
        raise AssertionError(f"nothing printed matches {pattern!r}:\n" + "\n".join(self.lines))

    def examples(self) -> list[str]:
        """The command lines printed under 'Submit a job:'."""
        start = self.lines.index("Submit a job:") + 1
        return [line.strip() for line in self.lines[start:start + 3]]

    def processes(self) -> list[psutil.Process]:
        return [psutil.Process(pid) for pid in family(self.popen.pid)]

    def interrupt(self, signum: int = signal.SIGINT, timeout: float = 90) -> int:
        self.popen.send_signal(signum)
        return self.popen.wait(timeout)

    def kill_all(self) -> None:
        """After a failed test: leave nothing behind."""
        for process in self.processes():
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def still_alive(processes: list[psutil.Process]) -> list[str]:
    """The processes that have not ended (zombies have: they only wait for a parent to read their status)."""
    _gone, alive = psutil.wait_procs(processes, timeout=15)
    return [f"{p.pid} {' '.join(p.cmdline())}" for p in alive
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def run_printed(line: str, env_line: str = "") -> subprocess.CompletedProcess:
    """Run a command line exactly as printed, in bash, with the venv's commands on PATH."""
    env = {**os.environ, "PATH": f"{GPUORCH.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", f"{env_line}\n{line}"], env=env, capture_output=True, text=True, timeout=180)


def session_with(key: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def wait_succeeded(api: str, session: requests.Session, job_id: str, timeout: float = 120) -> dict:
    def finished():
        record = session.get(f"{api}/api/v1/jobs/{job_id}", timeout=10).json()
        return record if record["status"] in ("succeeded", "failed", "cancelled") else None

    record = wait_for(finished, timeout, interval=0.2, message=f"job {job_id} to finish")
    assert record["status"] == "succeeded", record
    return record


@pytest.fixture(scope="module")
def audit(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("connections")


@pytest.fixture(scope="module")
def up(tmp_path_factory, audit):
    """`gpuorch-dev up` with the emulator, every Python process of it recording its connection attempts."""
    running = Up(["--step-seconds", "0.05", "--idle-stop-seconds", "300"], tmp_path_factory.mktemp("up"),
                 audited_env(audit))
    try:
        running.wait_for_line(READY_LINE)
        yield running
    finally:
        if running.popen.poll() is None:
            running.kill_all()
            running.popen.kill()


def test_it_prints_the_api_its_keys_flower_and_the_metrics(up):
    api = up.printed(r"^API: (\S+)")
    user, operator = up.printed(r"^User key \(owner local\): (\S+)"), up.printed(r"^Operator key \(owner ops\): (\S+)")
    flower_url, flower_user, flower_password = re.match(r"^Flower: (\S+) \(user (\S+), password (\S+)\)$",
                                                         next(line for line in up.lines if line.startswith("Flower:")))\
        .groups()

    assert requests.get(f"{api}/health", timeout=10).status_code == 200
    assert session_with(user).get(f"{api}/api/v1/jobs", timeout=10).status_code == 200
    assert session_with(user).get(f"{api}/api/v1/gpu", timeout=10).status_code == 403
    assert session_with(operator).get(f"{api}/api/v1/gpu", timeout=10).json()["instances"][0]["state"] == "stopped"
    assert requests.get(flower_url, timeout=10).status_code == 401
    assert requests.get(flower_url, auth=(flower_user, flower_password), timeout=10).status_code == 200
    metrics = re.findall(r"(http://\S+/metrics)", up.printed(r"^Prometheus metrics: (.+)$"))
    assert session_with(operator).get(metrics[0], timeout=10).status_code == 200  # the API's
    assert requests.get(metrics[1], timeout=10).status_code == 200  # the control worker's


def test_jobs_submitted_as_printed_succeed(up):
    curl, export, submit = up.examples()
    api, user = up.printed(r"^API: (\S+)"), up.printed(r"^User key \(owner local\): (\S+)")

    posted = run_printed(curl)
    assert posted.returncode == 0, posted.stderr
    job_id = re.search(r'"job_id": ?"([^"]+)"', posted.stdout).group(1)
    waited = run_printed(submit, export)  # --wait: exit 0 only once the job succeeded

    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert ": succeeded, 100%" in waited.stdout
    wait_succeeded(api, session_with(user), job_id)


def test_no_process_connects_outside_loopback(up, audit):
    """Invariant 9, with every process of the local stack (moto, API, control worker, beat, Flower, the GPU host's
    emulator and worker): what each has open is sampled while jobs run, and each attempt was recorded (module
    docstring of tests/support/connections.py: the two views cover what the other misses). Sampling every few
    milliseconds costs little, and the audit log keeps the attempts made before the test looked, start-up included."""
    api, user = up.printed(r"^API: (\S+)"), up.printed(r"^User key \(owner local\): (\S+)")
    image = up.printed(r"^Sample image: (\S+)")
    session = session_with(user)
    job_ids = [session.post(f"{api}/api/v1/camera-angle/jobs", json={"image": image, "move": move},
                            timeout=30).json()["job_id"] for move in ("top_down", "close_up", "wide_angle")]
    seen: dict[tuple[str, int], set[str]] = {}

    def finished() -> bool:
        processes = {p.pid: p for p in up.processes()}
        for pid, remotes in open_remote_addresses(list(processes)).items():
            for remote in remotes:
                seen.setdefault(remote, set()).add(" ".join(processes[pid].cmdline())[:80])
        return all(session.get(f"{api}/api/v1/jobs/{job_id}", timeout=10).json()["status"] == "succeeded"
                   for job_id in job_ids)

    wait_for(finished, 120, interval=0.01, message="the jobs to succeed")

    assert seen, "no open connection was ever seen: the sampling is broken"
    assert {remote: who for remote, who in seen.items() if not is_loopback(remote[0])} == {}
    attempts = recorded_attempts(audit)
    assert len({a.pid for a in attempts}) >= 5, "the audit hook did not record in every process"
    assert [a for a in attempts if not is_loopback(a.host)] == []


def test_ctrl_c_stops_every_process_it_started(up):
    started = up.processes()
    assert len(started) >= 8, [p.cmdline() for p in started]  # moto, API (+ workers), control, beat, Flower, GPU host

    assert up.interrupt() == 0
    assert up.lines[-1] == STOPPED_LINE
    assert still_alive(started) == []


def test_an_existing_comfyui_without_the_model_files_is_named_before_anything_starts(tmp_path):
    comfyui = start_in_thread(EmulatorConfig(data_dir=tmp_path / "comfyui", port=0,
                                             model_files=held("camera_lora")))
    try:
        refused = Up(["--comfyui-url", comfyui.url], tmp_path / "up")
        assert refused.popen.wait(60) == 2
    finally:
        comfyui.stop()
    refused.wait_for_line(f"  {NO_CAMERA_LORA}", timeout=5)
    assert any("the GPU worker would refuse to start" in line for line in refused.lines)
    assert refused.lines[-1].endswith("Nothing was started.")
    assert not (tmp_path / "up").exists()


def test_an_existing_comfyui_runs_the_jobs_with_no_emulator_of_its_own(tmp_path):
    comfyui = start_in_thread(EmulatorConfig(data_dir=tmp_path / "comfyui", port=0, step_seconds=0.05,
                                             model_files=builtin_folders()))
    running = Up(["--comfyui-url", comfyui.url, "--warmup-workflow", ""], tmp_path / "up")
    try:
        running.wait_for_line(READY_LINE)
        api, user = running.printed(r"^API: (\S+)"), running.printed(r"^User key \(owner local\): (\S+)")
        image = running.printed(r"^Sample image: (\S+)")
        session = session_with(user)
        job_id = session.post(f"{api}/api/v1/camera-angle/jobs", json={"image": image, "move": "top_down"},
                              timeout=30).json()["job_id"]
        wait_succeeded(api, session, job_id)
        started = running.processes()
        assert not [p for p in started if "gpuorch_dev.emulator" in " ".join(p.cmdline())]
        stats = requests.get(f"{comfyui.url}/emulator/stats", timeout=10).json()
        assert list(stats["prompts"]) == [job_id]  # the job, and no warm-up prompt: --warmup-workflow '' reached it
        assert running.interrupt(signal.SIGTERM) == 0  # as a service manager stops it
        assert running.lines[-1] == STOPPED_LINE
        assert still_alive(started) == []
    finally:
        if running.popen.poll() is None:
            running.kill_all()
            running.popen.kill()
        comfyui.stop()
