"""Real processes for integration tests: the ComfyUI emulator, the API under gunicorn, the GPU worker."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from gpuorch.access.keys import OPERATOR, USER, KeyStore
from gpuorch.aws.sqs import queue_depth
from gpuorch.provision import Provisioner
from gpuorch.celery.app import create_celery_app
from gpuorch.tasks import use_app
from gpuorch_dev.local.stack import LocalStack, Process, free_port
from gpuorch.services import Services
from gpuorch.jobs import states
from gpuorch.settings import Settings, settings_env
from tests.conftest import unique_settings as shared_unique_settings
from tests.conftest import wait_for  # noqa: F401 - the integration tests import it from here
from gpuorch_dev.local.paths import SAMPLE_IMAGE
from gpuorch.workflows import load_workflows
from gpuorch.workflows.models import comfyui_folders
from tests.support.aws_proxy import AwsProxy

SAMPLE = SAMPLE_IMAGE


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)




@dataclass
class Stack:
    settings: Settings
    services: Services
    processes: LocalStack
    comfyui_url: str
    api_url: str
    worker: Process | None
    image_uri: str
    #: Sends a user key (owner "tests"): every job the tests submit over REST is this owner's.
    session: requests.Session
    #: Sends an operator key (owner "ops").
    operator: requests.Session

    def stop(self) -> None:
        """Close the test's sessions, then stop the processes: an API worker stopping gracefully first waits out
        its clients' open keep-alive connections (gunicorn's keepalive, 2 s)."""
        self.session.close()
        self.operator.close()
        self.processes.stop()

    def submit(self, move: str = "top_down", timeout: float = 60) -> requests.Response:
        """POST one camera-angle job on the sample image; the answer as it came (202, or why not)."""
        return self.session.post(f"{self.api_url}/api/v1/camera-angle/jobs",
                                 json={"image": self.image_uri, "move": move}, timeout=timeout)

    def job(self, job_id: str) -> dict:
        answer = self.session.get(f"{self.api_url}/api/v1/jobs/{job_id}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def wait_terminal(self, job_id: str, timeout: float = 90, seen: list | None = None) -> dict:
        def done():
            record = self.job(job_id)
            if seen is not None:
                seen.append((record["status"], record["progress"]))
            return record if record["status"] in states.TERMINAL else None

        return wait_for(done, timeout, message=f"job {job_id} to finish")

    def gpu_queue_empty(self) -> bool:
        """Nothing visible or in flight on the GPU queue: every message has been acknowledged."""
        return queue_depth(self.services.aws.sqs, self.services.aws.queue_url(self.settings.gpu_queue)).total == 0

    def restart_comfyui(self, model_files: dict[str, list[str]], step_seconds: float = 0.05) -> None:
        """Stop the emulator and start a new one on the same port (queue and history are lost, as on a restart)."""
        [emulator] = [p for p in self.processes.processes if p.name == "comfyui-emulator"]
        emulator.stop()
        self.processes.processes.remove(emulator)
        port = int(self.comfyui_url.rsplit(":", 1)[1])
        self.processes.start_emulator(emulator.log_path.parent / "comfyui", model_files, step_seconds, port=port)

    def start_worker(self, extra_env: dict[str, str] | None = None) -> Process:
        [worker] = self.processes.start_procfile(["gpu_worker"], extra_env)
        return worker

    def wait_worker_ready(self, timeout: float = 60) -> None:
        """Until the GPU worker has passed its start-up checks and warm-up and consumes the queue."""
        def ready():
            assert self.worker is not None and self.worker.running, f"the GPU worker exited:\n{self.worker.tail()}"
            return "GPU worker ready" in self.worker.log_path.read_text(errors="replace")

        wait_for(ready, timeout, message="the GPU worker to be ready")

    def comfyui(self, path: str) -> dict:
        """GET a JSON route of the emulator (its own /emulator/... routes are served even during an outage)."""
        answer = requests.get(f"{self.comfyui_url}{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def comfyui_stats(self) -> dict:
        return self.comfyui("/emulator/stats")

    def arm_fault(self, **fault) -> dict:
        """Arm one emulator fault (see devtools/gpuorch_dev/emulator/faults.py); returns it as the emulator describes it."""
        answer = requests.post(f"{self.comfyui_url}/emulator/faults", json=fault, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()["fault"]

    def faults_fired(self, fault_id: str) -> list[dict]:
        """Where (prompt, node, step) the emulator fired the fault `fault_id`, in order."""
        return [fired for fired in self.comfyui("/emulator/faults")["fired"] if fired["fault_id"] == fault_id]

    def clear_faults(self) -> None:
        requests.delete(f"{self.comfyui_url}/emulator/faults", timeout=10).raise_for_status()


def unique_settings(endpoint: str, **overrides) -> Settings:
    # No rate or backlog limit unless a test sets one: the happy paths submit as fast as they like. Jobs the
    # tests submit with task.delay() are the owner "tests"'s, as REST ones through Stack.session are.
    # Webhook receivers run on loopback: GPUORCH_ALLOW_INSECURE_INPUTS lets jobs name them, as on the local stack.
    return shared_unique_settings(endpoint, **{
        "comfyui_retries": 2, "rate_limit_per_minute": 0, "max_backlog": 0, "submit_owner": "tests",
        "allow_insecure_inputs": True, **overrides,
    })


def key_session(services: Services, owner: str = "tests", *, operator: bool = False, **limits) -> requests.Session:
    """A requests session sending a new key of `owner`, made in the stack's key table as `gpuorch keys create` does."""
    _key, token = KeyStore(services.aws.dynamodb, services.settings.key_table).create(
        owner, role=OPERATOR if operator else USER, name="integration tests", **limits)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def start_stack(tmp: Path, endpoint: str, *, step_seconds: float, worker_env: dict[str, str] | None = None,
                run: tuple[str, ...] = ("gpu_worker",), aws_via: str | None = None, **overrides) -> Stack:
    """Provision, then start the emulator, the API and the Procfile processes in `run`.

    `aws_via`: the endpoint the processes reach AWS through (a fault-injecting proxy in front of
    `endpoint`); the Stack's own settings and clients keep talking to `endpoint` directly.
    """
    settings = unique_settings(endpoint, **overrides)
    services = Services(settings)
    Provisioner(services.aws, settings).run()
    services.aws.s3.upload_file(str(SAMPLE), settings.bucket, "inputs/house.png")
    processes = LocalStack(run_dir=tmp)
    try:
        model_files = comfyui_folders(load_workflows(settings.workflows_dir), settings.models)
        comfyui_url = processes.start_emulator(tmp / "comfyui", model_files, step_seconds)
        settings = dataclasses.replace(settings, comfyui_url=comfyui_url)
        services = Services(settings, services.aws)
        processes.env = settings_env(dataclasses.replace(settings, aws_endpoint_url=aws_via or endpoint))
        api_port = free_port()
        [api] = processes.start_procfile(["api"], {"GPUORCH_API_BIND": f"127.0.0.1:{api_port}", "GPUORCH_API_WORKERS": "2"})
        api_url = f"http://127.0.0.1:{api_port}"
        processes.wait_until_ready(api, lambda: requests.get(f"{api_url}/health", timeout=5).status_code == 200)
        started = {name: processes.start_procfile([name], worker_env if name == "gpu_worker" else None)[0]
                   for name in run}
    except Exception:
        processes.stop()
        raise
    return Stack(settings, services, processes, comfyui_url, api_url, started.get("gpu_worker"),
                 f"s3://{settings.bucket}/inputs/house.png", key_session(services),
                 key_session(services, "ops", operator=True))


@pytest.fixture(scope="session")
def stack(moto_endpoint, tmp_path_factory):
    """One shared stack for the happy paths; task.delay() in this process submits to it."""
    running = start_stack(tmp_path_factory.mktemp("stack"), moto_endpoint, step_seconds=0.15)
    use_app(create_celery_app(running.settings))
    yield running
    use_app(None)
    running.stop()


@pytest.fixture
def aws_proxy(moto_endpoint):
    """The fault-injecting proxy in front of moto (tests/support/aws_proxy.py): make_stack(aws_via=aws_proxy.url)."""
    with AwsProxy(moto_endpoint) as running:
        yield running


@pytest.fixture
def make_stack(moto_endpoint, tmp_path):
    """A private stack with its own settings (own queues and tables), for tests that break things."""
    started: list[Stack] = []

    def make(**kwargs) -> Stack:
        started.append(start_stack(tmp_path / f"stack{len(started)}", moto_endpoint, **kwargs))
        return started[-1]

    yield make
    for running in started:
        running.stop()
