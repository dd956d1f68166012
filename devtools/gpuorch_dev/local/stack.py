"""Starting and stopping the local stack's processes, each in its own process group with its own log."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from gpuorch_dev.local.procfile import load_procfile
from gpuorch_dev.local.paths import CHECKOUT, PROCFILE

log = logging.getLogger(__name__)

# Credentials the moto server accepts; set for every child so nothing can reach a real account.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def use_local_credentials() -> None:
    """Give this process the throwaway credentials too (for an entry point that talks to the moto server)."""
    os.environ.update(LOCAL_AWS_ENV)


class StackError(RuntimeError):
    """A local process failed to start or to become ready; the message carries its log's tail."""


def labelled(name: str, label: str) -> str:
    return f"{name}-{label}" if label else name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    # A Procfile process (API, workers, beat, Flower): it uses moto and ComfyUI but no other Procfile process.
    from_procfile: bool = False
    # Where this process's output begins: a log is appended to by every start of a process of that name.
    log_offset: int = 0

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def output(self) -> str:
        """Everything this process (not an earlier one of its name) has written to its log so far."""
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(self.log_offset)
                return log_file.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        """SIGTERM the whole group (gunicorn and Celery children too): the start of a graceful stop."""
        if self.running:
            self.signal_group(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int | None:
        """terminate(), then SIGKILL what is left of the group at the deadline."""
        self.terminate()
        return self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = 20.0) -> int | None:
        """Wait for a terminated process to exit; SIGKILL what is left of its group at the deadline."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
        self.signal_group(signal.SIGKILL)
        return self.popen.wait()


@dataclass
class LocalStack:
    """The processes of one local stack; `stop()` (or leaving the `with` block) ends them all."""

    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def __enter__(self) -> "LocalStack":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {**os.environ, **LOCAL_AWS_ENV, **self.env, **(extra or {})}
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self, name: str, command: str | list[str], extra_env: dict[str, str] | None = None, *,
              from_procfile: bool = False) -> Process:
        """Start one process in its own group, its output in run_dir/<name>.log."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.run_dir / f"{name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        argv = ["bash", "-c", f"exec {command}"] if isinstance(command, str) else command
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                argv, cwd=CHECKOUT, env=self.child_env(extra_env), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        process = Process(name, popen, log_path, from_procfile, offset)
        self.processes.append(process)
        log.info("started %s (pid %d), log %s", name, popen.pid, log_path)
        return process

    def start_procfile(self, names: list[str], extra_env: dict[str, str] | None = None, procfile: Path | None = None,
                       *, label: str = "") -> list[Process]:
        """The Procfile's processes `names`; a `label` (e.g. a GPU instance's id) tells their logs from others'."""
        commands = load_procfile(procfile or PROCFILE)
        missing = [n for n in names if n not in commands]
        if missing:
            raise StackError(f"Procfile has no process named {', '.join(missing)}")
        return [self.start(labelled(name, label), commands[name], extra_env, from_procfile=True) for name in names]

    def start_moto(self) -> str:
        """A moto server on a free loopback port; returns its endpoint once it answers."""
        port = free_port()
        process = self.start("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
        endpoint = f"http://127.0.0.1:{port}"
        self.wait_until_ready(process, lambda: requests.get(f"{endpoint}/moto-api/", timeout=2).ok)
        return endpoint

    def start_emulator(self, data_dir: Path, model_files: dict[str, list[str]], step_seconds: float,
                       port: int | None = None) -> str:
        """The ComfyUI emulator on a loopback port (a free one by default); returns its URL once it answers."""
        return self.start_emulator_process(data_dir, model_files, step_seconds, port)[0]

    def start_emulator_process(self, data_dir: Path, model_files: dict[str, list[str]], step_seconds: float,
                               port: int | None = None, *, label: str = "") -> tuple[str, Process]:
        """Like start_emulator, with the process too (to stop it when its GPU host stops)."""
        port = port or free_port()
        argv = [
            sys.executable, "-m", "gpuorch_dev.emulator", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), "--step-seconds", str(step_seconds),
        ]
        for folder, names in model_files.items():
            argv += [arg for name in names for arg in ("--model-file", f"{folder}={name}")]
        process = self.start(labelled("comfyui-emulator", label), argv)
        url = f"http://127.0.0.1:{port}"
        self.wait_until_ready(process, lambda: requests.get(f"{url}/system_stats", timeout=2).ok)
        return url, process

    def wait_until_ready(self, process: Process, probe: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll `probe` until it is true; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.running:
                raise StackError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
            try:
                if probe():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)  # bounded by the deadline above
        raise StackError(f"{process.name} not ready after {timeout:.0f} s:\n{process.tail()}")

    def stop(self) -> None:
        """Stop the Procfile processes together (their graceful shutdowns overlap), then the others one by one in
        reverse order of start: moto and the ComfyUI emulator outlive the workers' last calls."""
        together = [process for process in reversed(self.processes) if process.from_procfile]
        for process in together:
            process.terminate()
        for process in together:
            process.wait_stopped()
        for process in reversed(self.processes):
            if not process.from_procfile:
                process.stop()
        self.processes.clear()
