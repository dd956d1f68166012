"""Flower on the SQS broker with real processes: only with its login, the GPU worker online, its jobs' lives
(over its API and in a browser), nothing left on restarts, and a worker it shuts down started again."""

from __future__ import annotations

import uuid

import pytest
import requests

from gpuorch_dev.local.agent import GPU_WORKER_NO_RESTART, GPU_WORKER_RESTART, GPU_WORKER_RESTART_S
from gpuorch_dev.local.stack import free_port
from gpuorch_dev.local.supervise import RESTARTED, WAITING, SupervisedProcess, Unit
from gpuorch.celery.monitoring.names import BroadcastNames
from gpuorch.celery.names import gpu_queues
from tests.integration.browser import browser_page
from tests.integration.conftest import start_stack, wait_for
from tests.support.held_clock import HeldClock

AUTH = ("ops", "flower-test-password")
# Dashboard pages, and API routes that answer 200 with nothing to show.
PAGES = ("/", "/workers", "/tasks")
API_ROUTES = ("/api/workers", "/api/tasks", "/api/task/types")


class Flower:
    """Flower's HTTP API as an operator reaches it (basic auth: Flower opens its API to authenticated users only)."""

    def __init__(self, stack):
        self.stack = stack
        self.url = f"http://127.0.0.1:{stack.settings.flower_port}"
        self.process = None

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        [self.process] = self.stack.processes.start_procfile(["flower"], extra_env)
        self.stack.processes.wait_until_ready(
            self.process, lambda: requests.get(f"{self.url}/healthcheck", timeout=5).text == "OK")

    def stop(self) -> None:
        self.process.stop()
        self.stack.processes.processes.remove(self.process)

    def status(self, path: str, auth=AUTH) -> int:
        return requests.get(f"{self.url}{path}", auth=auth, timeout=30).status_code

    def get(self, path: str, **params):
        answer = requests.get(f"{self.url}{path}", params=params, auth=AUTH, timeout=30)
        return answer.json() if answer.status_code == 200 else None

    def gpu_worker(self) -> str | None:
        """The name of the worker Flower sees online and consuming this stack's GPU queues, once it does."""
        online = self.get("/api/workers", status="1") or {}
        workers = self.get("/api/workers", refresh="1") or {}
        for name, info in workers.items():
            queues = [queue["name"] for queue in info.get("active_queues", [])]
            if online.get(name) and queues == list(gpu_queues(self.stack.settings)):
                return name
        return None


def monitoring(**overrides) -> tuple[BroadcastNames, dict]:
    """A broadcast namespace of the test's own, and the stack's settings with it and Flower's login."""
    names = BroadcastNames(f"t{uuid.uuid4().hex[:8]}")  # topics and queues of this test's own
    return names, {"step_seconds": 0.05, "monitoring_namespace": names.namespace, "flower_port": free_port(),
                   "flower_basic_auth": ":".join(AUTH), **overrides}


@pytest.fixture(scope="module")
def monitored_stack(moto_endpoint, tmp_path_factory):
    """One stack with the GPU worker and Flower for the tests that watch them (the restart test leaves both
    running again)."""
    names, settings = monitoring()
    stack = start_stack(tmp_path_factory.mktemp("flower"), moto_endpoint, **settings)
    try:
        flower = Flower(stack)
        flower.start()
        stack.wait_worker_ready()
        yield stack, flower, names
    finally:
        stack.stop()


@pytest.fixture
def monitored(monitored_stack):
    """The shared stack, idle: every job of an earlier test acknowledged."""
    stack, _flower, _names = monitored_stack
    wait_for(stack.gpu_queue_empty, 30, message="the GPU queue to be empty")
    return monitored_stack


def broadcast_resources(stack, names: BroadcastNames) -> tuple[list[str], list[tuple[str, str]]]:
    """This namespace's SQS queues, and its SNS topics' subscriptions (topic, queue)."""
    aws = stack.services.aws
    queues = sorted(url.rsplit("/", 1)[-1] for url in aws.sqs.list_queues(QueueNamePrefix=names.namespace)
                    .get("QueueUrls", []))
    subscriptions = sorted(
        (s["TopicArn"].rsplit(":", 1)[-1], s["Endpoint"].rsplit(":", 1)[-1])
        for s in aws.sns.list_subscriptions()["Subscriptions"]
        if s["TopicArn"].rsplit(":", 1)[-1].startswith(f"{names.namespace}-")
    )
    return queues, subscriptions


def test_flower_sees_the_gpu_worker_and_a_job_from_received_to_succeeded(monitored):
    stack, flower, names = monitored
    worker = wait_for(flower.gpu_worker, 60, interval=0.5, message="Flower to see the GPU worker online")

    answer = stack.session.post(f"{stack.api_url}/api/v1/camera-angle/jobs",
                                json={"image": stack.image_uri, "move": "rotate_left", "degrees": 45}, timeout=10)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    assert stack.wait_terminal(job_id)["status"] == "succeeded"

    def succeeded():
        task = flower.get(f"/api/task/info/{job_id}")
        return task if task and task["state"] == "SUCCESS" else None

    task = wait_for(succeeded, 30, interval=0.2, message="Flower to see the job succeed")
    assert task["name"] == "gpuorch.tasks.camera_angle" and task["worker"] == worker
    assert task["received"] <= task["started"] <= task["succeeded"]
    assert 0 < task["runtime"] < 60
    assert job_id in task["args"] or "rotate_left" in task["kwargs"], task
    listed = flower.get("/api/tasks", workername=worker)
    assert listed[job_id]["state"] == "SUCCESS" and listed[job_id]["runtime"] == task["runtime"]

    missing = f"s3://{stack.settings.bucket}/inputs/no-such-image.png"
    answer = stack.session.post(f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": missing, "move": "top_down"},
                                timeout=10)
    failed_id = answer.json()["job_id"]
    assert stack.wait_terminal(failed_id)["status"] == "failed"

    def failed():
        task = flower.get(f"/api/task/info/{failed_id}")
        return task if task and task["state"] == "FAILURE" else None

    task = wait_for(failed, 30, interval=0.2, message="Flower to see the job fail")
    assert "JobFailed" in task["exception"] and task["worker"] == worker

    # Events and commands travel through SNS to the broadcast queues only: the GPU queue holds nothing more,
    # keeps its own visibility timeout, and no topic delivers to it.
    assert stack.gpu_queue_empty()
    gpu_queue = stack.services.aws.sqs.get_queue_attributes(
        QueueUrl=stack.services.aws.queue_url(stack.settings.gpu_queue), AttributeNames=["All"])["Attributes"]
    assert gpu_queue["VisibilityTimeout"] == str(stack.settings.visibility_timeout) and "Policy" not in gpu_queue
    _, subscriptions = broadcast_resources(stack, names)
    assert subscriptions and all(queue.startswith(f"{names.namespace}-") for _, queue in subscriptions)


def test_restarting_flower_and_the_worker_leaves_no_queue_or_subscription_behind(monitored):
    stack, flower, names = monitored
    wait_for(flower.gpu_worker, 60, interval=0.5, message="Flower to see the GPU worker online")
    before = broadcast_resources(stack, names)
    queues, subscriptions = before
    events_queues = [q for q in queues if q.startswith(f"{names.namespace}-events-")]
    node_queues = [q for q in queues if q.startswith(f"{names.namespace}-pidbox-")]
    assert len(events_queues) == 1 and len(node_queues) == 1, queues  # Flower's receiver, the worker's pidbox
    assert len(subscriptions) == 2, subscriptions
    assert not [q for q in queues if q.startswith(f"{names.namespace}-reply-")], "a reply queue outlived its call"

    flower.stop()
    stack.worker.stop()
    stack.processes.processes.remove(stack.worker)
    queues, subscriptions = broadcast_resources(stack, names)
    assert queues == node_queues, "Flower's event queue outlived it"  # the worker's is kept for its restart
    assert [queue for _, queue in subscriptions] == node_queues

    flower.start()
    stack.worker = stack.start_worker()
    stack.wait_worker_ready()
    wait_for(flower.gpu_worker, 60, interval=0.5, message="the new Flower to see the restarted worker")
    after = broadcast_resources(stack, names)
    assert len(after[0]) == len(before[0]) and len(after[1]) == len(before[1]), (before, after)
    assert [q for q in after[0] if q.startswith(f"{names.namespace}-pidbox-")] == node_queues
    assert set(after[0]).isdisjoint(events_queues), "the first Flower's event queue is still there"


def test_flower_answers_its_dashboard_and_api_only_with_its_login(make_stack):
    # No worker: Flower's inspect calls (at its start) wait out their timeout, and so does each of its stops.
    _names, settings = monitoring(run=(), flower_inspect_timeout=1.0)
    stack = make_stack(**settings)
    flower = Flower(stack)

    # Without a login (and no development permission) it does not start at all.
    [refused] = stack.processes.start_procfile(["flower"], {"GPUORCH_FLOWER_BASIC_AUTH": ""})
    assert refused.popen.wait(60) == 2 and "refusing to start: no login" in refused.tail()
    stack.processes.processes.remove(refused)

    flower.start({"FLOWER_UNAUTHENTICATED_API": "true"})  # dropped by the launcher: it cannot open the API
    for path in PAGES + API_ROUTES:
        assert flower.status(path, auth=None) == 401, path
        assert flower.status(path, auth=(AUTH[0], "wrong")) == 401, path
        assert flower.status(path, auth=("someone", AUTH[1])) == 401, path
        assert flower.status(path) == 200, path
    flower.stop()

    # The development permission, on loopback: the pages open, the API stays closed.
    flower.start({"GPUORCH_FLOWER_BASIC_AUTH": "", "GPUORCH_FLOWER_ALLOW_NO_AUTH": "true"})
    assert [flower.status(path, auth=None) for path in PAGES] == [200] * len(PAGES)
    assert [flower.status(path, auth=None) for path in API_ROUTES] == [401] * len(API_ROUTES)


def test_the_dashboard_in_a_browser_shows_the_gpu_worker_online_and_a_succeeded_job(monitored, tmp_path):
    stack, flower, _ = monitored
    worker = wait_for(flower.gpu_worker, 60, interval=0.5, message="Flower to see the GPU worker online")
    answer = stack.submit("top_down")
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    assert stack.wait_terminal(job_id)["status"] == "succeeded"
    wait_for(lambda: (flower.get(f"/api/task/info/{job_id}") or {}).get("state") == "SUCCESS", 30, interval=0.2,
             message="Flower to see the job succeed")

    from playwright.sync_api import expect

    with browser_page(tmp_path / "chromium-profile", AUTH) as page:
        # The workers page fills its table from Flower's JSON: expect() polls it until the deadline.
        assert page.goto(f"{flower.url}/").status == 200
        row = page.locator("#workers-table tbody tr", has_text=worker)
        expect(row).to_contain_text("Online", timeout=30_000)
        page.screenshot(path=tmp_path / "workers.png", full_page=True)

        assert page.goto(f"{flower.url}/tasks").status == 200
        row = page.locator("#tasks-table tbody tr", has_text=job_id)
        expect(row).to_contain_text("gpuorch.tasks.camera_angle", timeout=30_000)
        expect(row).to_contain_text("SUCCESS")
        page.screenshot(path=tmp_path / "tasks.png", full_page=True)

        assert page.goto(f"{flower.url}/task/{job_id}").status == 200
        expect(page.locator("body")).to_contain_text("SUCCESS")
        expect(page.locator("body")).to_contain_text(worker)
        page.screenshot(path=tmp_path / "task.png", full_page=True)


def test_a_gpu_worker_shut_down_from_flower_is_started_again_as_its_unit_says(make_stack):
    """Flower's "Shut Down" (Celery's remote shutdown, through SNS) makes the worker exit 0; the GPU instance's unit
    restarts it anyway (Restart=always), and so does the local GPU host that plays that unit."""
    _names, settings = monitoring(run=())
    stack = make_stack(**settings)
    clock = HeldClock()
    unit = Unit("gpu_worker", stack.start_worker, GPU_WORKER_RESTART_S, GPU_WORKER_NO_RESTART, GPU_WORKER_RESTART)
    supervised = SupervisedProcess(unit, clock)
    stack.worker = supervised.process
    flower = Flower(stack)
    flower.start()
    stack.wait_worker_ready()
    worker = wait_for(flower.gpu_worker, 60, interval=0.5, message="Flower to see the GPU worker online")

    answer = requests.post(f"{flower.url}/api/worker/shutdown/{worker}", auth=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    assert supervised.process.popen.wait(timeout=60) == 0  # a clean exit, which Restart=on-failure left down
    assert supervised.check() == WAITING
    clock.advance(GPU_WORKER_RESTART_S)
    assert supervised.check() == RESTARTED
    stack.worker = supervised.process
    stack.wait_worker_ready()
    wait_for(flower.gpu_worker, 60, interval=0.5, message="Flower to see the restarted GPU worker online")
    answer = stack.submit("close_up")
    assert answer.status_code == 202, answer.text
    assert stack.wait_terminal(answer.json()["job_id"])["status"] == "succeeded"
