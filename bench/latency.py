"""How fast the caller hears, on the local stack with a warm, idle GPU worker, beside the floor of the same necessary
calls made directly; and how many requests one API host lets wait at once.

Dispatch: from the client's submission (REST) to ComfyUI starting the job's prompt (its history's execution_start).
Its floor, with boto3 and requests against the same servers, in order: the record's put, the queue's send, the
receive, the record's read and its move to running, the input's fetch, ComfyUI's upload and prompt.

Notify: from the job's end (its record's finished_at, stamped by the GPU worker just before its final write) to the
caller hearing it, three ways: a `GET ?wait=60` opened after the submission's 202, the event stream's `end` event,
and the webhook at a receiver on loopback (verified with the Standard Webhooks library). Each way is a caller's of its
own jobs, in turn (a job asks for a webhook only when its caller hears by webhook), as each floor's calls are made
alone: three callers at once on one job would put their requests on the servers beside the job's and charge them to
each way. The floor of a wait and of the stream: the final write and a consistent read of it. The webhook's, whose
delivery goes off the hot path through the control queue: the final write, the control queue's send and receive (a
long poll already open), the record's read, the delivery's conditional put and the signed POST.

Each floor call is the request gpuorch makes: the record as the API wrote the warm-up job's, its moves to running
and to succeeded with the conditions that keep a status moving forward only.

Then waiting requests: `GET ?wait=` requests are opened on a job that never runs until the API answers 503, under
the Procfile's gunicorn settings, while a plain GET is timed.

Last line: `dispatch p50 <ms> floor <ms> ratio <r>; notify p50 <ms> floor <ms> ratio <r>`, notify being its way with
the highest ratio. `--quick` is a few seconds' run that tests/bench/test_benches.py makes, so the bench keeps
working; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from standardwebhooks.webhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuorch.access.keys import KeyStore  # noqa: E402
from gpuorch.aws.clients import AwsClients  # noqa: E402
from gpuorch.aws.dynamodb import encode_item  # noqa: E402
from gpuorch.provision import Provisioner  # noqa: E402
from gpuorch.settings import Settings, settings_env  # noqa: E402
from gpuorch.webhooks.secrets import SecretStore, new_secret  # noqa: E402
from gpuorch.workflows import load_workflows  # noqa: E402
from gpuorch.workflows.models import comfyui_folders  # noqa: E402
from gpuorch_dev.local.paths import SAMPLE_IMAGE  # noqa: E402
from gpuorch_dev.local.stack import LocalStack, free_port, use_local_credentials  # noqa: E402

PARAMS = {"move": "top_down"}
WAYS = ("wait", "stream", "webhook")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


class Receiver:
    """A webhook receiver on loopback: when each job's job.succeeded arrived, once its signature verified."""

    def __init__(self, secret: str):
        self.arrived: dict[str, float] = {}
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = Webhook(secret).verify(body, {k.lower(): v for k, v in self.headers.items()})
                except Exception:  # noqa: BLE001 - a bad signature is counted, not fatal
                    receiver.refused += 1
                    payload = None
                if payload and payload["type"] == "job.succeeded":
                    receiver.arrived[payload["data"]["job_id"]] = at
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def execution_start(comfyui_url: str, prompt_id: str, deadline_s: float = 30) -> float:
    """When ComfyUI started the prompt (its history's execution_start), once it has finished."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        history = requests.get(f"{comfyui_url}/history/{prompt_id}", timeout=10).json().get(prompt_id)
        if history and history.get("status", {}).get("completed") is not None:
            for event, data in history["status"]["messages"]:
                if event == "execution_start":
                    return data["timestamp"] / 1000
        time.sleep(0.01)  # the bench polls ComfyUI, as a client would, after the measured moment
    raise RuntimeError(f"prompt {prompt_id} did not finish in ComfyUI")


@dataclasses.dataclass
class Rig:
    settings: Settings
    aws: AwsClients
    api_url: str
    session: requests.Session
    comfyui_url: str
    receiver: Receiver
    image_uri: str
    secret: str  # the key's webhook secret

    def job(self, job_id: str) -> dict:
        return self.session.get(f"{self.api_url}/api/v1/jobs/{job_id}", timeout=30).json()


def one_job(rig: Rig, way: str) -> tuple[str, float, float, dict[str, float]]:
    """Submit one job and hear its end one way (WAYS); (its id, dispatch ms, notify ms, {dispatch part: ms})."""
    heard: dict[str, float] = {}
    hook = {"webhook": rig.receiver.url, "webhook_events": ["job.succeeded"]} if way == "webhook" else {}
    started = time.time()
    answer = rig.session.post(f"{rig.api_url}/api/v1/camera-angle/jobs", timeout=30,
                              json={"image": rig.image_uri, **PARAMS, **hook})
    if answer.status_code != 202:
        raise RuntimeError(f"submission refused: {answer.status_code} {answer.text}")
    job_id = answer.json()["job_id"]
    answered = time.time()
    waiting = requests.Session()
    waiting.headers.update(rig.session.headers)

    def wait() -> None:
        record = waiting.get(f"{rig.api_url}/api/v1/jobs/{job_id}", params={"wait": 60}, timeout=90).json()
        heard["wait"] = time.time()
        assert record["status"] == "succeeded", record

    def stream() -> None:
        with waiting.get(f"{rig.api_url}/api/v1/jobs/{job_id}/events", stream=True, timeout=90) as events:
            for line in events.iter_lines(decode_unicode=True):
                if line == "event: end":
                    heard["stream"] = time.time()
                    return

    listener = {"wait": wait, "stream": stream}.get(way)
    follower = threading.Thread(target=listener, daemon=True) if listener is not None else None
    if follower is not None:
        follower.start()
    dispatch = (execution_start(rig.comfyui_url, job_id) - started) * 1000
    if follower is not None:
        follower.join(90)
    else:
        deadline = time.monotonic() + 30
        while job_id not in rig.receiver.arrived and time.monotonic() < deadline:
            time.sleep(0.01)
        heard["webhook"] = rig.receiver.arrived.get(job_id, float("nan"))
    record = rig.job(job_id)
    finished, running = seconds(record["finished_at"]), seconds(record["started_at"])
    parts = {"answered": answered - started, "taken": running - answered,
             "prompted": started + dispatch / 1000 - running}
    return job_id, dispatch, (heard[way] - finished) * 1000, {part: s * 1000 for part, s in parts.items()}


# The record's conditional moves, as gpuorch.jobs.store.JobStore.transition writes them: the status may only move
# forward (design invariant), so the condition is part of the necessary call.
TO_RUNNING = {"UpdateExpression": "SET #f0 = :v0, #f1 = :v1, #f2 = :v2 ADD attempts :one",
              "ConditionExpression": "attribute_exists(task_id) AND #status IN (:a0, :a1)"}
TO_SUCCEEDED = {"UpdateExpression": "SET #f0 = :v0, #f1 = :v1, #f2 = :v2, #f3 = :v3, #f4 = :v4, #f5 = :v5",
                "ConditionExpression": "attribute_exists(task_id) AND #status IN (:a0)"}


@dataclasses.dataclass
class Floor:
    """The necessary calls, made directly with boto3 and requests against the same servers, with the same requests:
    the record as the API wrote a real job's at its submission, its moves as the GPU worker makes them."""

    rig: Rig
    queue_url: str  # a queue of its own, standing for the GPU queue
    control_queue_url: str  # and one standing for the control queue a webhook's delivery goes through
    image: bytes
    record: dict  # a real job's record as submitted (DynamoDB's typed form)
    outputs: list  # and its outputs once over

    @classmethod
    def of(cls, rig: Rig, job_id: str, image: bytes) -> "Floor":
        item = rig.aws.dynamodb.get_item(TableName=rig.settings.job_table, Key=encode_item({"task_id": job_id}),
                                         ConsistentRead=True)["Item"]
        record = {name: value for name, value in item.items()
                  if name not in ("started_at", "finished_at", "node", "gpu_seconds")}
        record.update(encode_item({"status": "queued", "progress": 0, "attempts": 0, "outputs": []}))
        create = rig.aws.sqs.create_queue
        return cls(rig, create(QueueName=f"bench-floor-{uuid.uuid4().hex[:8]}")["QueueUrl"],
                   create(QueueName=f"bench-floor-control-{uuid.uuid4().hex[:8]}")["QueueUrl"], image, record,
                   item["outputs"]["L"])

    def move(self, job_id: str, expression: dict, fields: dict, allowed: tuple[str, ...]) -> None:
        """The record's conditional move, `fields` (DynamoDB-typed) set, from one of the `allowed` statuses."""
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        values.update(encode_item({f":a{i}": status for i, status in enumerate(allowed)}))
        if "ADD" in expression["UpdateExpression"]:
            values[":one"] = {"N": "1"}
        self.rig.aws.dynamodb.update_item(
            TableName=self.rig.settings.job_table, Key=encode_item({"task_id": job_id}), ReturnValues="ALL_NEW",
            ExpressionAttributeNames={**{f"#f{i}": name for i, name in enumerate(fields)}, "#status": "status"},
            ExpressionAttributeValues=values, **expression)

    def dispatch(self) -> float:
        """Ms from the record's put to ComfyUI starting the prompt: the put, the queue's send, the receive, the
        record's read and its move to running, the input's fetch, ComfyUI's upload and prompt."""
        aws, settings = self.rig.aws, self.rig.settings
        job_id = str(uuid.uuid4())
        started = time.time()
        aws.dynamodb.put_item(TableName=settings.job_table, Item={**self.record, "task_id": {"S": job_id}},
                              ConditionExpression="attribute_not_exists(task_id)")
        aws.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps({"id": job_id}))
        [message] = aws.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=1).get("Messages", [])
        aws.dynamodb.get_item(TableName=settings.job_table, Key=encode_item({"task_id": job_id}), ConsistentRead=True)
        now = stamp()
        self.move(job_id, TO_RUNNING, encode_item({"status": "running", "updated_at": now, "started_at": now}),
                  ("queued", "running"))
        data = aws.s3.get_object(Bucket=settings.bucket, Key="inputs/house.png")["Body"].read()
        name = f"floor-{job_id}.png"
        comfyui_url = self.rig.comfyui_url
        requests.post(f"{comfyui_url}/upload/image", files={"image": (name, data, "image/png")},
                      data={"overwrite": "true"}, timeout=30).raise_for_status()
        graph = floor_graph(self.rig, name)
        requests.post(f"{comfyui_url}/prompt", json={"prompt": graph, "prompt_id": job_id, "client_id": "floor"},
                      timeout=30).raise_for_status()
        at = execution_start(comfyui_url, job_id)
        aws.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        assert data == self.image
        self.finish(job_id)  # not timed: ended, so that no record of the floor's lies in the API's queue reads
        return (at - started) * 1000

    def running_job(self) -> str:
        job_id = str(uuid.uuid4())
        self.rig.aws.dynamodb.put_item(TableName=self.rig.settings.job_table, Item={
            **self.record, "task_id": {"S": job_id}, "status": {"S": "running"}})
        return job_id

    def finish(self, job_id: str) -> None:
        now = stamp()
        fields = encode_item({"status": "succeeded", "updated_at": now, "outputs": [], "gpu_seconds": 0.1,
                              "progress": 100, "finished_at": now})
        self.move(job_id, TO_SUCCEEDED, {**fields, "outputs": {"L": self.outputs}}, ("running",))

    def notify_wait(self) -> float:
        """Ms of the final write and a consistent read of it (a wait's and the stream's floor)."""
        job_id = self.running_job()
        started = time.time()
        self.finish(job_id)
        self.rig.aws.dynamodb.get_item(TableName=self.rig.settings.job_table, Key=encode_item({"task_id": job_id}),
                                       ConsistentRead=True)
        return (time.time() - started) * 1000

    def notify_webhook(self) -> float:
        """Ms from the final write to the receiver having the signed POST: the write, the control queue's send and
        receive (off the hot path), the record's read, the delivery's conditional put, the POST."""
        aws, settings, receiver = self.rig.aws, self.rig.settings, self.rig.receiver
        job_id = self.running_job()
        received: list = []
        # The control worker is already waiting on its queue when the job ends.
        listener = threading.Thread(target=lambda: received.extend(aws.sqs.receive_message(
            QueueUrl=self.control_queue_url, WaitTimeSeconds=5).get("Messages", [])), daemon=True)
        listener.start()
        time.sleep(0.05)  # the long poll is open before the write: the worker was waiting before the job ended
        started = time.time()
        self.finish(job_id)
        aws.sqs.send_message(QueueUrl=self.control_queue_url, MessageBody=json.dumps([job_id, "job.succeeded"]))
        listener.join(10)
        aws.dynamodb.get_item(TableName=settings.job_table, Key=encode_item({"task_id": job_id}), ConsistentRead=True)
        aws.dynamodb.put_item(TableName=settings.control_table, ConditionExpression="attribute_not_exists(pk)",
                              Item=encode_item({"pk": f"delivery#{job_id}", "sk": "job.succeeded", "state": "pending",
                                                "message_id": f"msg_{job_id}", "attempts": [], "round_tries": 0}))
        at = datetime.now(timezone.utc)
        body = json.dumps({"type": "job.succeeded", "timestamp": at.isoformat(), "data": {"job_id": job_id}})
        headers = {"webhook-id": f"msg_{job_id}", "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": Webhook(self.rig.secret).sign(f"msg_{job_id}", at, body),
                   "Content-Type": "application/json", "Connection": "close"}
        requests.post(receiver.url, data=body, headers=headers, timeout=10).raise_for_status()
        aws.sqs.delete_message(QueueUrl=self.control_queue_url, ReceiptHandle=received[0]["ReceiptHandle"])
        return (receiver.arrived[job_id] - started) * 1000


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def floor_graph(rig: Rig, image_name: str) -> dict:
    """The camera-angle graph the GPU worker submits, bound the same way (the workflow's own binding)."""
    from gpuorch.workflows import bind, load_workflows

    workflow = load_workflows(rig.settings.workflows_dir).get("camera-angle")
    return bind(workflow, {"image": rig.image_uri, **PARAMS}, [image_name], rig.settings.models,
                output_prefix="floor/out", seed_source=image_name)


def plain_gets(rig: Rig, job_id: str, count: int = 20) -> float:
    """p50 ms of plain GETs of a job, one after another."""
    took = []
    for _ in range(count):
        began = time.perf_counter()
        rig.session.get(f"{rig.api_url}/api/v1/jobs/{job_id}", timeout=30).raise_for_status()
        took.append((time.perf_counter() - began) * 1000)
    return percentile(took, 50)


def waiters(rig: Rig, limit: int) -> tuple[int, int, float, float]:
    """(requests held waiting, refused with 503, plain GET p50 ms before and while they wait) on a job that never
    runs."""
    job_id = f"bench-never-{uuid.uuid4()}"  # recorded, never queued: it stays queued
    rig.aws.dynamodb.put_item(TableName=rig.settings.job_table, Item=encode_item({
        "task_id": job_id, "status": "queued", "workflow": "camera-angle", "params": PARAMS, "owner": "bench",
        "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00.000000Z",
        "progress": 0, "attempts": 0, "outputs": [], "source": "api"}))
    codes: list[int] = []
    wait_s = 15
    before = plain_gets(rig, job_id)

    def one(_i: int) -> None:
        session = requests.Session()
        session.headers.update(rig.session.headers)
        codes.append(session.get(f"{rig.api_url}/api/v1/jobs/{job_id}", params={"wait": wait_s}, timeout=60)
                     .status_code)

    with ThreadPoolExecutor(max_workers=limit) as pool:
        for i in range(limit):
            pool.submit(one, i)
        time.sleep(wait_s / 3)  # the waiters are in; the refused ones have been answered already
        meanwhile = plain_gets(rig, job_id)
    return codes.count(200), codes.count(503), before, meanwhile


def report(name: str, values: list[float]) -> str:
    return f"p50 {percentile(values, 50):7.1f} ms  p99 {percentile(values, 99):7.1f} ms  (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60,
                        help="Jobs submitted one after another, each way (wait, stream, webhook) hearing every third.")
    parser.add_argument("--waiters", type=int, default=80, help="Waiting requests opened at once on the API.")
    parser.add_argument("--logs", type=Path, help="Keep the processes' logs in this folder.")
    parser.add_argument("--quick", action="store_true", help="3 jobs, 60 waiters: checks the bench runs (make test)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.waiters = 3, 60
    use_local_credentials()

    with tempfile.TemporaryDirectory() as tmp, LocalStack(run_dir=args.logs or Path(tmp)) as stack:
        endpoint = stack.start_moto()
        settings = Settings(aws_endpoint_url=endpoint, allow_insecure_inputs=True, instance_id="i-bench",
                            gpu_metrics_port=0, control_metrics_port=0, rate_limit_per_minute=0, max_backlog=0)
        aws = AwsClients(settings)
        Provisioner(aws, settings).run()
        aws.s3.upload_file(str(SAMPLE_IMAGE), settings.bucket, "inputs/house.png")
        comfyui_url = stack.start_emulator(Path(tmp) / "comfyui",
                                           comfyui_folders(load_workflows(settings.workflows_dir), settings.models),
                                           0.01)
        settings = dataclasses.replace(settings, comfyui_url=comfyui_url)
        stack.env = settings_env(settings)

        key, token = KeyStore(aws.dynamodb, settings.key_table).create("bench", name="bench/latency.py")
        secret = new_secret()
        SecretStore(aws.dynamodb, settings.control_table).put(key.key_id, secret)
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        [api] = stack.start_procfile(["api"], {"GPUORCH_API_BIND": f"127.0.0.1:{port}"})  # the Procfile's settings
        stack.wait_until_ready(api, lambda: requests.get(f"{api_url}/health", timeout=5).status_code == 200)
        stack.start_procfile(["control_worker"])
        [gpu] = stack.start_procfile(["gpu_worker"])
        stack.wait_until_ready(gpu, lambda: "GPU worker ready" in gpu.log_path.read_text(errors="replace"),
                               timeout=120)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        rig = Rig(settings, aws, api_url, session, comfyui_url, Receiver(secret),
                  f"s3://{settings.bucket}/inputs/house.png", secret)

        # Warm every path (connections, the GPU worker's pool, caches) before measuring; the floor's record is this
        # job's as the API wrote it.
        warm_id, *_ = one_job(rig, "webhook")
        for way in WAYS[:-1]:
            one_job(rig, way)
        floor = Floor.of(rig, warm_id, SAMPLE_IMAGE.read_bytes())
        floor.dispatch(), floor.notify_wait(), floor.notify_webhook()
        dispatch, floor_d, parts = [], [], {}
        notify: dict[str, list[float]] = {way: [] for way in WAYS}
        floor_n: dict[str, list[float]] = {way: [] for way in WAYS}
        for i in range(args.jobs):  # alternating, so that neither inherits the other's state
            way = WAYS[i % len(WAYS)]
            _, sent, heard_ms, split = one_job(rig, way)
            dispatch.append(sent)
            for part, ms in split.items():
                parts.setdefault(part, []).append(ms)
            notify[way].append(heard_ms)
            floor_d.append(floor.dispatch())
            waited = floor.notify_wait()
            floor_n["wait"].append(waited)
            floor_n["stream"].append(waited)
            floor_n["webhook"].append(floor.notify_webhook())
        held, refused, before, meanwhile = waiters(rig, args.waiters)

        print(f"jobs={args.jobs} (moto server, ComfyUI emulator, API under the Procfile's gunicorn settings, "
              f"control and GPU workers, all on loopback; webhooks with a bad signature: {rig.receiver.refused})")
        print(f"dispatch        {report('dispatch', dispatch)}")
        print(f"dispatch floor  {report('floor', floor_d)}")
        print("dispatch parts (p50): " + ", ".join(f"{part} {percentile(ms, 50):.1f} ms" for part, ms in parts.items())
              + " (answered: the API's 202; taken: on to the GPU worker's running write; prompted: on to ComfyUI)")
        ratios = {way: percentile(notify[way], 50) / percentile(floor_n[way], 50) for way in WAYS}
        for way in WAYS:
            print(f"notify {way:8} {report(way, notify[way])}  ratio {ratios[way]:.2f}")
            print(f"  its floor     {report('floor', floor_n[way])}")
        print(f"waiters: {held} held at once on one API host, {refused} of {args.waiters} refused (503 "
              f"too_many_waiters); a plain GET p50 {meanwhile:.1f} ms meanwhile, {before:.1f} ms before")
        worst = max(WAYS, key=ratios.__getitem__)
        d50, fd50 = percentile(dispatch, 50), percentile(floor_d, 50)
        n50, fn50 = percentile(notify[worst], 50), percentile(floor_n[worst], 50)
        print(f"dispatch p50 {d50:.1f} floor {fd50:.1f} ratio {d50 / fd50:.2f}; "
              f"notify p50 {n50:.1f} floor {fn50:.1f} ratio {n50 / fn50:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
