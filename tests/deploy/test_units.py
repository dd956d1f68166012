"""The systemd units, the process launcher, the release installer, the container image definition and the
settings example in configs/deploy: consistent with the Procfile, the settings and each other."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gpuorch_dev.local.procfile import load_procfile
from gpuorch.settings import Settings, documented_variables
from tests.paths import REPO

ROOT = REPO
DEPLOY = ROOT / "configs" / "deploy"
UNITS = DEPLOY / "systemd"
RUN_PROCESS = DEPLOY / "run-process"
INSTALL = DEPLOY / "install-release.sh"
SETUP_COMFYUI = DEPLOY / "gpu-instance" / "setup-comfyui.sh"
PREPARE_INSTANCE_STORE = DEPLOY / "gpu-instance" / "prepare-instance-store.sh"
PROCFILE = load_procfile(ROOT / "Procfile")
ENV_FILE = "/etc/gpuorch/gpuorch.env"
RELEASE = "/opt/gpuorch/current"
# Procfile process -> its unit.
PROCESS_UNITS = {
    "api": "gpuorch-api.service",
    "control_worker": "gpuorch-control-worker.service",
    "beat": "gpuorch-beat.service",
    "flower": "gpuorch-flower.service",
    "gpu_worker": "gpuorch-gpu-worker.service",
}
CELERY_UNITS = ("gpuorch-control-worker.service", "gpuorch-beat.service", "gpuorch-gpu-worker.service",
                "gpuorch-flower.service")
# Each hides or denies /dev/nvidia*, or forbids the code PyTorch and Triton generate at run time.
BREAKS_CUDA = ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock", "MemoryDenyWriteExecute",
               "SystemCallFilter")
# Variables the Procfile's api line reads, besides the settings.
PROCFILE_VARIABLES = {"GPUORCH_API_BIND", "GPUORCH_API_WORKERS", "GPUORCH_API_THREADS"}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values, in order (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNITS / name)


def one(sections, section: str, key: str) -> str:
    values = sections.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_every_procfile_process_has_a_unit_that_runs_it_through_the_launcher():
    assert set(PROCFILE) == set(PROCESS_UNITS), "a Procfile process without a unit, or a unit without a process"
    for process, name in PROCESS_UNITS.items():
        sections = unit(name)
        assert one(sections, "Service", "ExecStart") == f"{RELEASE}/configs/deploy/run-process {process}"
        assert one(sections, "Service", "EnvironmentFile") == ENV_FILE
        assert one(sections, "Service", "User") == "gpuorch"
        assert one(sections, "Service", "WorkingDirectory") == RELEASE
        assert any(v.startswith(f"PATH={RELEASE}/.venv/bin:") for v in sections["Service"]["Environment"])
        # Any exit but a stop: Celery's remote shutdown (Flower) exits 0, and must not leave a worker down.
        assert one(sections, "Service", "Restart") == "always"


@pytest.mark.parametrize("name", CELERY_UNITS)
def test_celery_units_stop_with_a_warm_shutdown(name):
    """SIGTERM to Celery's main process only: its warm shutdown lets running tasks finish."""
    sections = unit(name)
    assert one(sections, "Service", "KillMode") == "mixed"
    assert one(sections, "Service", "KillSignal") == "SIGTERM"


def test_gpu_worker_starts_after_comfyui_and_outlasts_the_longest_job_when_stopped():
    sections = unit("gpuorch-gpu-worker.service")
    settings = Settings()
    assert "comfyui.service" in one(sections, "Unit", "After").split()
    assert "comfyui.service" in one(sections, "Unit", "Wants").split()
    assert "Requires" not in sections["Unit"] and "BindsTo" not in sections["Unit"]
    assert seconds(one(sections, "Service", "TimeoutStopSec")) >= settings.task_time_limit + 60
    assert one(sections, "Install", "WantedBy") == "multi-user.target"


def test_comfyui_listens_where_the_worker_looks_and_keeps_cuda_usable():
    sections = unit("comfyui.service")
    exec_start = one(sections, "Service", "ExecStart")
    url = Settings().comfyui_url
    host, port = re.fullmatch(r"http://([\d.]+):(\d+)", url).groups()
    assert f"--listen {host}" in exec_start and f"--port {port}" in exec_start
    assert not set(BREAKS_CUDA) & set(sections["Service"]), "an option that breaks CUDA"
    assert one(sections, "Service", "NoNewPrivileges") == "yes"
    assert one(sections, "Install", "WantedBy") == "multi-user.target"


def test_always_on_units_belong_to_the_target_and_beat_keeps_its_schedule_in_its_state_directory():
    for name in ("gpuorch-api.service", "gpuorch-control-worker.service", "gpuorch-beat.service",
                 "gpuorch-flower.service"):
        sections = unit(name)
        assert one(sections, "Unit", "PartOf") == "gpuorch.target"
        assert one(sections, "Install", "WantedBy") == "gpuorch.target"
    beat = unit("gpuorch-beat.service")
    state = one(beat, "Service", "StateDirectory")
    assert f"GPUORCH_BEAT_SCHEDULE_FILE=/var/lib/{state}/celerybeat-schedule" in beat["Service"]["Environment"]


def test_comfyui_prune_runs_daily_and_only_on_comfyuis_scratch_folders():
    timer = unit("comfyui-prune.timer")
    assert one(timer, "Timer", "Persistent") == "true"
    service = unit("comfyui-prune.service")
    assert one(service, "Service", "User") == "comfyui"
    command = one(service, "Service", "ExecStart")
    assert " -delete" in command and "/opt/ComfyUI/models" not in command


def test_units_pass_systemd_analyze_verify(tmp_path):
    """systemd's own check of every directive, with the commands the units run stubbed in a scratch root (verify
    requires each unit's executables to exist). `make test` installs Debian's systemd package, as root; without it
    the test fails under CI=true and is skipped elsewhere."""
    analyze, system_units = shutil.which("systemd-analyze"), Path("/usr/lib/systemd/system")
    if analyze is None or not (system_units / "sysinit.target").exists():
        reason = "systemd-analyze and systemd's own units are needed: `make test` installs Debian's systemd " \
                 "package (apt-get, as root), or run `apt-get install systemd`"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    shutil.copytree(system_units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    target = tmp_path / "etc/systemd/system"
    shutil.copytree(UNITS, target)
    for path in target.iterdir():
        for key, values in parse_unit(path).get("Service", {}).items():
            if key.startswith("Exec"):
                for value in values:
                    command = Path(value.lstrip("-+@:!").split()[0])
                    stub = tmp_path / command.relative_to("/")
                    stub.parent.mkdir(parents=True, exist_ok=True)
                    stub.write_text("#!/bin/sh\n")
                    stub.chmod(0o755)
    answer = subprocess.run([analyze, "verify", "--man=no", f"--root={tmp_path}",
                             *sorted(f"/etc/systemd/system/{p.name}" for p in target.iterdir())],
                            capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0 and not answer.stderr.strip(), answer.stderr


def run_process(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUN_PROCESS), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env})


def test_run_process_runs_a_procfile_line_with_its_variables_and_extra_arguments(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\nhello: echo hello ${GREETING:-world}\nother: echo other\n")
    assert run_process("hello", "again", GPUORCH_PROCFILE=str(procfile)).stdout == "hello world again\n"
    assert run_process("hello", GPUORCH_PROCFILE=str(procfile), GREETING="you").stdout == "hello you\n"


def test_run_process_runs_anything_else_as_a_command():
    answer = run_process("gpuorch", "--version")
    assert answer.returncode == 0 and answer.stdout.startswith("gpuorch, version"), answer.stderr


def test_run_process_without_arguments_lists_the_processes():
    answer = run_process()
    assert answer.returncode == 64
    assert all(name in answer.stderr for name in PROCFILE)


def test_run_process_replaces_itself_with_the_process(tmp_path):
    """exec all the way down: the process systemd or the container runtime signals is the program itself."""
    procfile = tmp_path / "Procfile"
    procfile.write_text("me: python -c 'import os; print(os.getpid())'\n")
    child = subprocess.Popen([str(RUN_PROCESS), "me"], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "GPUORCH_PROCFILE": str(procfile),
                                  "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    out, _ = child.communicate(timeout=60)
    assert int(out) == child.pid


def test_deploy_scripts_are_executable_and_parse():
    for script in (RUN_PROCESS, INSTALL, SETUP_COMFYUI, PREPARE_INSTANCE_STORE):
        assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, script


def test_install_release_stages_a_release_its_units_and_switches_between_releases(tmp_path):
    env = {**os.environ, "DESTDIR": str(tmp_path), "SKIP_VENV": "1"}
    first = subprocess.run([str(INSTALL), "install", "--role", "gpu"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr
    releases = sorted((tmp_path / "opt/gpuorch/releases").iterdir())
    assert len(releases) == 1
    release = releases[0]
    assert (release / "Procfile").read_text() == (ROOT / "Procfile").read_text()
    assert not (release / ".venv").exists() and not (release / ".git").exists()
    assert os.readlink(tmp_path / "opt/gpuorch/current") == f"releases/{release.name}"
    installed = {p.name for p in (tmp_path / "etc/systemd/system").iterdir()}
    assert installed == {"gpuorch-models-sync.service", "comfyui.service", "gpuorch-gpu-worker.service",
                         "comfyui-prune.service", "comfyui-prune.timer"}
    env_file = tmp_path / "etc/gpuorch/gpuorch.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    assert "Edit" in first.stdout  # the example still says CHANGE-ME

    again = subprocess.run([str(INSTALL), "install", "--role", "gpu"], env=env, capture_output=True, text=True)
    assert again.returncode != 0 and "exists already" in again.stderr
    shutil.copytree(release, tmp_path / "opt/gpuorch/releases/0.0.9-old", symlinks=True)
    back = subprocess.run([str(INSTALL), "activate", "0.0.9-old", "--role", "always-on"], env=env,
                          capture_output=True, text=True)
    assert back.returncode == 0, back.stderr
    assert os.readlink(tmp_path / "opt/gpuorch/current") == "releases/0.0.9-old"
    listed = subprocess.run([str(INSTALL), "list"], env=env, capture_output=True, text=True).stdout.splitlines()
    assert sorted(listed) == sorted(["* 0.0.9-old", f"  {release.name}"])


def test_containerfile_builds_a_non_root_image_of_the_procfile_processes():
    text = (DEPLOY / "Containerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert instructions[0] == "FROM python:3.11-slim"
    user = re.search(r"^USER (\S+)$", text, re.M).group(1)
    assert user not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["/app/configs/deploy/run-process"\]$', text, re.M)
    default = re.search(r'^CMD \["(\w+)"\]$', text, re.M).group(1)
    assert default in PROCFILE
    ignored = (DEPLOY / "Containerfile.dockerignore").read_text().splitlines()
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY {path}: no such file"
            assert f"!{path.split('/')[0]}" in ignored, f"{path} is left out of the build context"


def test_settings_example_names_only_real_settings_and_loads():
    text = (DEPLOY / "gpuorch.env.example").read_text()
    named = set(re.findall(r"^#?(GPUORCH_[A-Z0-9_]+)=", text, re.M))
    known = {var for var, _, _ in documented_variables()} | PROCFILE_VARIABLES
    assert named - known == set(), "not settings"
    values = dict(line.split("=", 1) for line in text.splitlines() if line.startswith("GPUORCH_"))
    settings = Settings.from_env(values)
    assert settings.monthly_budget_usd > 0


def test_setup_comfyui_brings_the_model_files_with_the_boots_own_unit():
    """No list of files or URLs of its own: the workflow folders declare them, the sync unit brings them."""
    text = SETUP_COMFYUI.read_text()
    assert "systemctl restart gpuorch-models-sync.service" in text
    assert "huggingface.co" not in text and "MODEL_URL_" not in text


def test_the_model_sync_runs_once_per_boot_beside_comfyui_and_before_the_worker_as_comfyui():
    sync = unit("gpuorch-models-sync.service")
    assert one(sync, "Service", "Type") == "oneshot" and one(sync, "Service", "RemainAfterExit") == "yes"
    assert one(sync, "Service", "ExecStart") == f"{RELEASE}/configs/deploy/run-process gpuorch models sync"
    assert one(sync, "Service", "ExecStartPre") == f"+{RELEASE}/configs/deploy/gpu-instance/prepare-instance-store.sh"
    assert one(sync, "Service", "User") == "comfyui" and one(sync, "Service", "EnvironmentFile") == ENV_FILE
    assert one(sync, "Unit", "Before").split() == ["gpuorch-gpu-worker.service"]
    assert one(sync, "Install", "WantedBy") == "multi-user.target"
    comfyui, worker = unit("comfyui.service"), unit("gpuorch-gpu-worker.service")
    # ComfyUI starts while the files arrive (the cost model counts the longer of the two); the worker waits for both.
    assert "gpuorch-models-sync.service" not in one(comfyui, "Unit", "After").split()
    assert {"gpuorch-models-sync.service", "comfyui.service"} <= set(one(worker, "Unit", "After").split())
    # A failed sync holds neither back: the worker then refuses naming each missing file, where the API shows it.
    assert "Requires" not in comfyui["Unit"] and "Requires" not in worker["Unit"]


def test_the_model_sync_may_write_where_the_settings_put_the_model_files():
    writable = one(unit("gpuorch-models-sync.service"), "Service", "ReadWritePaths").split()
    example = dict(line.split("=", 1) for line in (DEPLOY / "gpuorch.env.example").read_text().splitlines()
                   if line.startswith("GPUORCH_"))
    assert example["GPUORCH_MODELS_DIR"] in writable
    assert f"-{Settings().instance_store_dir}" in writable  # "-": absent on the volume store, and that is fine


def test_preparing_the_instance_store_does_nothing_when_the_models_stay_on_the_volume():
    answer = subprocess.run([str(PREPARE_INSTANCE_STORE)], capture_output=True, text=True, timeout=30,
                            env={"PATH": os.environ["PATH"], "GPUORCH_MODELS_STORE": "volume"})
    assert answer.returncode == 0, answer.stderr
    assert "stay on the volume; nothing to mount" in answer.stdout


def test_deployment_guide_mentions_every_deployment_file():
    guide = (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            assert path.name in guide, f"docs/DEPLOYMENT.md does not mention {path.relative_to(ROOT)}"
