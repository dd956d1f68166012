"""How fast the caller hears, on the local stack with a warm, idle GPU worker, beside the floor of the same necessary
calls made directly; and how many requests one API host lets wait at once.

Dispatch: from the client's submission (REST) to ComfyUI starting the job's prompt (its history's execution_start).
Its floor, with boto3 and requests against the same servers, in order: the record's put, the queue's send, the
receive, the record's read and its move to running, the input's fetch, ComfyUI's upload and prompt.

Notify: from the job's end (its record's finished_at, stamped by the GPU worker just before its final write) to the
caller hearing it, three ways at once: a `GET ?wait=60` already waiting, the event stream's `end` event, and the
webhook at a receiver on loopback (verified with the Standard Webhooks library). Its floor: the final write and a
consistent read of it, with boto3.

Then waiting requests: `GET ?wait=` requests are opened on a job that never runs until the API answers 503, under
the Procfile's gunicorn settings, while a plain GET is timed.

Last line: `dispatch p50 <ms> floor <ms> ratio <r>; notify p50 <ms> floor <ms> ratio <r>`, notify being its slowest
way. `--quick` is a few seconds' run that tests/bench/test_benches.py makes, so the bench keeps working; its figures
mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
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

    def job(self, job_id: str) -> dict:
        return self.session.get(f"{self.api_url}/api/v1/jobs/{job_id}", timeout=30).json()


def one_job(rig: Rig) -> tuple[float, dict[str, float], dict[str, float]]:
    """Submit one job and hear its end three ways; (dispatch ms, {way: notify ms}, {dispatch part: ms})."""
    heard: dict[str, float] = {}
    started = time.time()
    answer = rig.session.post(f"{rig.api_url}/api/v1/camera-angle/jobs", timeout=30,
                              json={"image": rig.image_uri, **PARAMS, "webhook": rig.receiver.url,
                                    "webhook_events": ["job.succeeded"]})
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

    listeners = [threading.Thread(target=fn, daemon=True) for fn in (wait, stream)]
    for listener in listeners:
        listener.start()
    dispatch = (execution_start(rig.comfyui_url, job_id) - started) * 1000
    for listener in listeners:
        listener.join(90)
    deadline = time.monotonic() + 30
    while job_id not in rig.receiver.arrived and time.monotonic() < deadline:
        time.sleep(0.01)
    heard["webhook"] = rig.receiver.arrived.get(job_id, float("nan"))
    record = rig.job(job_id)
    finished, running = seconds(record["finished_at"]), seconds(record["started_at"])
    parts = {"answered": answered - started, "taken": running - answered,
             "prompted": started + dispatch / 1000 - running}
    return dispatch, {way: (heard[way] - finished) * 1000 for way in WAYS}, {k: v * 1000 for k, v in parts.items()}


def floor_dispatch(rig: Rig, queue_url: str, image: bytes) -> float:
    """The necessary calls of a dispatch, made directly and in order; ms to ComfyUI starting the prompt."""
    aws, settings = rig.aws, rig.settings
    job_id = str(uuid.uuid4())
    key = encode_item({"task_id": job_id})
    started = time.time()
    aws.dynamodb.put_item(TableName=settings.job_table, Item=encode_item({
        "task_id": job_id, "status": "queued", "workflow": "camera-angle", "params": PARAMS,
        "created_at": "2026-01-01T00:00:00.000000Z"}), ConditionExpression="attribute_not_exists(task_id)")
    aws.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"id": job_id}))
    [message] = aws.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    aws.dynamodb.get_item(TableName=settings.job_table, Key=key, ConsistentRead=True)
    aws.dynamodb.update_item(TableName=settings.job_table, Key=key, UpdateExpression="SET #s = :r",
                             ExpressionAttributeNames={"#s": "status"},
                             ExpressionAttributeValues=encode_item({":r": "running"}))
    data = aws.s3.get_object(Bucket=settings.bucket, Key="inputs/house.png")["Body"].read()
    name = f"floor-{job_id}.png"
    requests.post(f"{rig.comfyui_url}/upload/image", files={"image": (name, data, "image/png")},
                  data={"overwrite": "true"}, timeout=30).raise_for_status()
    graph = floor_graph(rig, name)
    requests.post(f"{rig.comfyui_url}/prompt", json={"prompt": graph, "prompt_id": job_id, "client_id": "floor"},
                  timeout=30).raise_for_status()
    at = execution_start(rig.comfyui_url, job_id)
    aws.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert data == image
    return (at - started) * 1000


def floor_graph(rig: Rig, image_name: str) -> dict:
    """The camera-angle graph the GPU worker submits, bound the same way (the workflow's own binding)."""
    from gpuorch.workflows import bind, load_workflows

    workflow = load_workflows(rig.settings.workflows_dir).get("camera-angle")
    return bind(workflow, {"image": rig.image_uri, **PARAMS}, [image_name], rig.settings.models,
                output_prefix="floor/out", seed_source=image_name)


def floor_notify(rig: Rig) -> float:
    """The final write and a consistent read of it; ms."""
    aws, table = rig.aws, rig.settings.job_table
    job_id = str(uuid.uuid4())
    key = encode_item({"task_id": job_id})
    aws.dynamodb.put_item(TableName=table, Item=encode_item({"task_id": job_id, "status": "running",
                                                             "workflow": "camera-angle",
                                                             "created_at": "2026-01-01T00:00:00.000000Z"}))
    started = time.time()
    aws.dynamodb.update_item(TableName=table, Key=key, UpdateExpression="SET #s = :s, finished_at = :f",
                             ConditionExpression="#s IN (:r)", ExpressionAttributeNames={"#s": "status"},
                             ExpressionAttributeValues=encode_item({":s": "succeeded", ":r": "running",
                                                                    ":f": "2026-01-01T00:00:01.000000Z"}))
    aws.dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)
    return (time.time() - started) * 1000


def waiters(rig: Rig, limit: int) -> tuple[int, int, float]:
    """(requests held waiting, refused with 503, plain GET p50 ms while they wait) on a job that never runs."""
    job_id = f"bench-never-{uuid.uuid4()}"  # recorded, never queued: it stays queued
    rig.aws.dynamodb.put_item(TableName=rig.settings.job_table, Item=encode_item({
        "task_id": job_id, "status": "queued", "workflow": "camera-angle", "params": PARAMS, "owner": "bench",
        "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00.000000Z",
        "progress": 0, "attempts": 0, "outputs": [], "source": "api"}))
    codes: list[int] = []
    wait_s = 15

    def one(_i: int) -> None:
        session = requests.Session()
        session.headers.update(rig.session.headers)
        codes.append(session.get(f"{rig.api_url}/api/v1/jobs/{job_id}", params={"wait": wait_s}, timeout=60)
                     .status_code)

    with ThreadPoolExecutor(max_workers=limit) as pool:
        for i in range(limit):
            pool.submit(one, i)
        time.sleep(wait_s / 3)  # the waiters are in; the refused ones have been answered already
        plain = []
        for _ in range(20):
            began = time.perf_counter()
            rig.session.get(f"{rig.api_url}/api/v1/jobs/{job_id}", timeout=30).raise_for_status()
            plain.append((time.perf_counter() - began) * 1000)
    return codes.count(200), codes.count(503), percentile(plain, 50)


def report(name: str, values: list[float]) -> str:
    return f"p50 {percentile(values, 50):7.1f} ms  p99 {percentile(values, 99):7.1f} ms  (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="Jobs submitted one after another.")
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
        comfyui_url = stack.start_emulator(Path(tmp) / "comfyui", settings.models.by_folder(), 0.01)
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
                  f"s3://{settings.bucket}/inputs/house.png")
        queue_url = aws.sqs.create_queue(QueueName=f"bench-floor-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        image = SAMPLE_IMAGE.read_bytes()

        one_job(rig)  # warm every path (connections, the GPU worker's pool, caches) before measuring
        floor_dispatch(rig, queue_url, image)
        dispatch, notify, floor_d, floor_n = [], {way: [] for way in WAYS}, [], []
        parts: dict[str, list[float]] = {}
        for _ in range(args.jobs):  # alternating, so that neither inherits the other's state
            sent, heard, split = one_job(rig)
            dispatch.append(sent)
            for part, ms in split.items():
                parts.setdefault(part, []).append(ms)
            for way in WAYS:
                notify[way].append(heard[way])
            floor_d.append(floor_dispatch(rig, queue_url, image))
            floor_n.append(floor_notify(rig))
        held, refused, plain = waiters(rig, args.waiters)

        print(f"jobs={args.jobs} (moto server, ComfyUI emulator, API under the Procfile's gunicorn settings, "
              f"control and GPU workers, all on loopback; webhooks with a bad signature: {rig.receiver.refused})")
        print(f"dispatch        {report('dispatch', dispatch)}")
        print(f"dispatch floor  {report('floor', floor_d)}")
        print("dispatch parts (p50): " + ", ".join(f"{part} {percentile(ms, 50):.1f} ms" for part, ms in parts.items())
              + " (answered: the API's 202; taken: on to the GPU worker's running write; prompted: on to ComfyUI)")
        for way in WAYS:
            print(f"notify {way:8} {report(way, notify[way])}  ratio {percentile(notify[way], 50) / percentile(floor_n, 50):.2f}")
        print(f"notify floor    {report('floor', floor_n)}")
        print(f"waiters: {held} held at once on one API host, {refused} of {args.waiters} refused (503 "
              f"too_many_waiters); a plain GET p50 {plain:.1f} ms meanwhile")
        slowest = max(WAYS, key=lambda way: statistics.median(notify[way]))
        d50, fd50 = percentile(dispatch, 50), percentile(floor_d, 50)
        n50, fn50 = percentile(notify[slowest], 50), percentile(floor_n, 50)
        print(f"dispatch p50 {d50:.1f} floor {fd50:.1f} ratio {d50 / fd50:.2f}; "
              f"notify p50 {n50:.1f} floor {fn50:.1f} ratio {n50 / fn50:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
