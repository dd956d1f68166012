"""The command line: it logs where it listens, serves (fault routes included), and exits cleanly on SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading

import requests

from .conftest import DEADLINE_S
from tests.paths import REPO



def test_cli_serves_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable,
        "-m",
        "gpuorch_dev.emulator",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--step-seconds",
        "0",
        "--model-file",
        "loras=camera.safetensors",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=DEADLINE_S)
            match = re.search(r"listening on (http://\S+)", line)
            url = match.group(1) if match else None
        stats = requests.get(f"{url}/system_stats", timeout=DEADLINE_S).json()
        assert stats["emulator"] is True
        info = requests.get(f"{url}/object_info/LoraLoaderModelOnly", timeout=DEADLINE_S).json()
        assert info["LoraLoaderModelOnly"]["input"]["required"]["lora_name"][0] == ["camera.safetensors"]

        # Integration tests break the process over HTTP.
        fault = {"kind": "unavailable", "for_requests": 1}
        armed = requests.post(f"{url}/emulator/faults", json=fault, timeout=DEADLINE_S)
        assert armed.status_code == 201
        assert requests.get(f"{url}/system_stats", timeout=DEADLINE_S).status_code == 503
        assert requests.get(f"{url}/system_stats", timeout=DEADLINE_S).status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
