"""Load: 1,000 REST submissions from 50 concurrent clients on the local stack, every job followed to its end.

The stack: a moto server, the API under gunicorn, the control worker and beat, and GPU workers (one per
GPU instance, `--gpus`, each on its own ComfyUI emulator with a fast step time). The emulator really
scales and encodes each 1-megapixel image, so on a small machine the GPUs decide how long the jobs take
to end; the submissions do not wait for them. Submissions go in rounds; between them, the floor (what a
submission cannot avoid: the rate limiter's conditional put, the record's put and one SQS send, in plain
boto3, from as many clients, against a scratch table and queue) is measured in a round of its own on the same busy moto server, and a single
client's submissions give the latency without contention. A job is lost when it was accepted (202) and
then has no record, never reaches a terminal status, ran more than once in ComfyUI, or succeeded with other
than one output in S3. Refusals (429, 503) are counted apart from losses.
Last line: `load submitted <n> accepted <n> lost <n> p99 submit <ms>` (target: lost 0). `--quick` is a short run
that tests/bench/test_benches.py makes, so the bench keeps working (no job lost); its timings mean nothing.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.submit import percentile, run_clients  # noqa: E402
from gpuorch.access.keys import KeyStore  # noqa: E402
from gpuorch.aws.clients import AwsClients  # noqa: E402
from gpuorch.provision import Provisioner  # noqa: E402
from gpuorch.settings import Settings, settings_env  # noqa: E402
from gpuorch_dev.local.paths import PROCFILE, SAMPLE_IMAGE  # noqa: E402
from gpuorch_dev.local.procfile import load_procfile  # noqa: E402
from gpuorch_dev.local.stack import LocalStack, free_port, use_local_credentials  # noqa: E402
from gpuorch.workflows import load_workflows  # noqa: E402
from gpuorch.workflows.models import comfyui_folders  # noqa: E402

TERMINAL = ("succeeded", "failed", "cancelled")
REFUSALS = (429, 503)
# Seconds between the progress lines while every job is followed to its end.
FOLLOW_LINE_S = 10


def api_session(token: str) -> requests.Session:
    """The one place API requests get their headers: the client's API key."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def client_keys(aws: AwsClients, settings: Settings, count: int) -> Callable[[], str]:
    """`count` API keys, one per concurrent client, each allowed more than the load asks of it: the bench
    measures the pipeline, with the rate limiter's conditional write in every submission. Returns a taker
    that hands them out in turn (the clients of one round hold different keys)."""
    keys = KeyStore(aws.dynamodb, settings.key_table)
    tokens = itertools.cycle([keys.create(f"bench-client-{k}", rate_per_minute=60_000, burst=1_000)[1]
                              for k in range(count)])
    lock = threading.Lock()

    def take() -> str:
        with lock:
            return next(tokens)

    return take


@dataclasses.dataclass
class Outcomes:
    """Every submission's answer: accepted job ids, refusals by status, other failures, latencies."""

    accepted: list[str] = dataclasses.field(default_factory=list)
    refused: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def submitted(self) -> int:
        return len(self.accepted) + sum(self.refused.values()) + sum(self.errors.values())


def submitter(url: str, params: dict, outcomes: Outcomes, take_key: Callable[[], str]):
    local = threading.local()  # one keep-alive session (and key) per client thread

    def submit(_i: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = api_session(take_key())
        start = time.perf_counter()
        try:
            answer = session.post(f"{url}/api/v1/camera-angle/jobs", json=params, timeout=120)
            status, job_id = answer.status_code, answer.json().get("job_id") if answer.status_code == 202 else None
        except requests.RequestException as exc:
            status, job_id = type(exc).__name__, None
        elapsed = (time.perf_counter() - start) * 1000
        with outcomes.lock:
            outcomes.latencies_ms.append(elapsed)
            if job_id:
                outcomes.accepted.append(job_id)
            elif status in REFUSALS:
                outcomes.refused[status] += 1
            else:
                outcomes.errors[status] += 1

    return submit


def floor_call(aws: AwsClients, table: str, queue_url: str, params: dict):
    """The unavoidable work of one submission, in plain boto3, on a scratch table and queue."""

    def call(_i: int) -> None:
        job_id = str(uuid.uuid4())
        now_ms = int(time.time() * 1000)
        # The rate limiter's conditional write, which a limit shared across API hosts cannot avoid.
        aws.dynamodb.put_item(
            TableName=table,
            Item={"task_id": {"S": f"rate#{threading.get_ident()}"}, "tat_ms": {"N": str(now_ms + 1)}},
            ConditionExpression="attribute_not_exists(task_id) OR tat_ms <= :now",
            ExpressionAttributeValues={":now": {"N": str(now_ms)}},
        )
        aws.dynamodb.put_item(
            TableName=table,
            Item={"task_id": {"S": job_id}, "status": {"S": "queued"}, "params": {"S": json.dumps(params)}},
            ConditionExpression="attribute_not_exists(task_id)",
        )
        aws.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"id": job_id, "kwargs": params}))

    return call


def scratch(aws: AwsClients) -> tuple[str, str]:
    """A table and a queue no process of the stack reads: the floor's writes disturb nothing."""
    name = f"bench-floor-{uuid.uuid4().hex[:8]}"
    aws.dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
    )
    return name, aws.sqs.create_queue(QueueName=name)["QueueUrl"]


def job_records(aws: AwsClients, table: str) -> dict[str, dict]:
    """Every job record (task_id -> status, attempts, outputs count), read straight from DynamoDB."""
    records, query = {}, {"TableName": table, "ProjectionExpression": "task_id, #s, attempts, outputs",
                          "ExpressionAttributeNames": {"#s": "status"}}
    while True:
        page = aws.dynamodb.scan(**query)
        for item in page["Items"]:
            records[item["task_id"]["S"]] = {
                "status": item["status"]["S"],
                "attempts": int(item.get("attempts", {}).get("N", "0")),
                "outputs": len(item.get("outputs", {}).get("L", [])),
            }
        if "LastEvaluatedKey" not in page:
            return records
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stored_outputs(aws: AwsClients, bucket: str) -> collections.Counter:
    """How many objects each job has under results/<job id>/."""
    counts: collections.Counter = collections.Counter()
    for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="results/"):
        for obj in page.get("Contents", []):
            counts[obj["Key"].split("/")[1]] += 1
    return counts


def lost_jobs(accepted: list[str], records: dict, executed: dict, outputs: collections.Counter) -> dict[str, str]:
    """Accepted jobs that did not end exactly once, and why (a pure function of what was read)."""
    lost = {}
    for job_id in accepted:
        record = records.get(job_id)
        if record is None:
            lost[job_id] = "no record"
        elif record["status"] not in TERMINAL:
            lost[job_id] = f"still {record['status']}"
        elif executed.get(job_id, 0) > 1:
            lost[job_id] = f"ran {executed[job_id]} times in ComfyUI"
        elif record["status"] == "succeeded" and not (record["outputs"] == outputs.get(job_id, 0) == 1):
            lost[job_id] = f"{record['outputs']} output(s) recorded, {outputs.get(job_id, 0)} stored"
    return lost


def report(name: str, latencies: list[float], wall: float | None = None) -> None:
    rate = f" throughput={len(latencies) / wall:6.1f}/s" if wall else ""
    print(f"{name:8} n={len(latencies):5}{rate} p50={percentile(latencies, 50):7.1f} ms "
          f"p99={percentile(latencies, 99):7.1f} ms", flush=True)


def start_stack(stack: LocalStack, run_dir: Path, step_seconds: float,
                gpus: int) -> tuple[Settings, AwsClients, str, list[str]]:
    endpoint = stack.start_moto()
    # The backlog limit stays on, above what the load can queue: refusals would measure the limit, not the pipeline.
    settings = Settings(aws_endpoint_url=endpoint, receive_wait_seconds=1, instance_id="i-bench-gpu",
                        monitoring=False, lifecycle_check_seconds=10, warmup_workflow="", max_backlog=100_000)
    aws = AwsClients(settings)
    Provisioner(aws, settings).run()
    aws.s3.upload_file(str(SAMPLE_IMAGE), settings.bucket, "inputs/house.png")
    model_files = comfyui_folders(load_workflows(settings.workflows_dir), settings.models)
    comfyui_urls = [stack.start_emulator(run_dir / f"comfyui{k}", model_files, step_seconds) for k in range(gpus)]
    settings = dataclasses.replace(settings, comfyui_url=comfyui_urls[0])
    stack.env = settings_env(settings)
    port = free_port()
    [api] = stack.start_procfile(["api"], {"GPUORCH_API_BIND": f"127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"
    stack.wait_until_ready(api, lambda: requests.get(f"{url}/health", timeout=5).status_code == 200)
    stack.start_procfile(["control_worker", "beat"])
    command = load_procfile(PROCFILE)["gpu_worker"]
    workers = [stack.start(f"gpu_worker{k}", command, {"GPUORCH_COMFYUI_URL": comfyui_url,
                                                        "GPUORCH_INSTANCE_ID": f"i-bench-gpu{k}"})
               for k, comfyui_url in enumerate(comfyui_urls)]
    for worker in workers:
        stack.wait_until_ready(worker, lambda: "GPU worker ready" in worker.log_path.read_text(errors="replace"), 180)
    return settings, aws, url, comfyui_urls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="Submission rounds, each followed by a floor round.")
    parser.add_argument("--floor-calls", type=int, default=100, help="Floor calls per round.")
    parser.add_argument("--single", type=int, default=30, help="Submissions from one client, before the load.")
    parser.add_argument("--step-seconds", type=float, default=0.002, help="The emulator's time per sampler step.")
    parser.add_argument("--gpus", type=int, default=3, help="GPU instances: a GPU worker and an emulator each.")
    parser.add_argument("--deadline", type=float, default=3600, help="Seconds to wait for every job to end.")
    parser.add_argument("--quick", action="store_true",
                        help="20 submissions from 4 clients on 1 GPU: checks the bench runs (make test), measures "
                             "nothing but that no job is lost")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.clients, args.rounds, args.floor_calls, args.single, args.gpus = 20, 4, 2, 10, 3, 1
    use_local_credentials()

    with tempfile.TemporaryDirectory() as tmp, LocalStack(run_dir=Path(tmp)) as stack:
        settings, aws, url, comfyui_urls = start_stack(stack, Path(tmp), args.step_seconds, args.gpus)
        params = {"image": f"s3://{settings.bucket}/inputs/house.png", "move": "rotate_left", "degrees": 45}
        table, queue_url = scratch(aws)
        floor = floor_call(aws, table, queue_url, params)
        take_key = client_keys(aws, settings, args.clients)
        print(f"stack up: clients={args.clients} requests={args.requests} gpus={args.gpus} step={args.step_seconds}s "
              f"(moto server, API under gunicorn, control worker + beat, GPU workers on emulators)", flush=True)

        warm, single = Outcomes(), Outcomes()
        run_clients(2, 4, submitter(url, params, warm, take_key))  # gunicorn's workers load the catalogue on first use
        run_clients(1, args.single, submitter(url, params, single, take_key))
        report("1 client", single.latencies_ms)

        load, floor_lat, load_wall, floor_wall = Outcomes(), [], 0.0, 0.0
        per_round = -(-args.requests // args.rounds)
        started = time.monotonic()
        for round_number in range(args.rounds):
            count = min(per_round, args.requests - round_number * per_round)
            if count <= 0:
                break
            _, wall = run_clients(args.clients, count, submitter(url, params, load, take_key))
            load_wall += wall
            latencies, wall = run_clients(args.clients, args.floor_calls, floor)
            floor_lat += latencies
            floor_wall += wall
            print(f"round {round_number + 1}: submitted {load.submitted} accepted {len(load.accepted)} "
                  f"refused {dict(load.refused)} errors {dict(load.errors)} at {time.monotonic() - started:.0f} s",
                  flush=True)
        report("load", load.latencies_ms, load_wall)
        report("floor", floor_lat, floor_wall)

        # Follow every job to its end, straight from the job table; the single client's jobs too.
        accepted = warm.accepted + single.accepted + load.accepted
        deadline = time.monotonic() + args.deadline
        said_at = 0.0
        while True:
            records = job_records(aws, settings.job_table)
            by_status = collections.Counter(records.get(j, {}).get("status", "no record") for j in accepted)
            ended = sum(by_status[s] for s in TERMINAL) == len(accepted)
            if ended or time.monotonic() - said_at >= FOLLOW_LINE_S:
                print(f"follow: {dict(by_status)} at {time.monotonic() - started:.0f} s", flush=True)
                said_at = time.monotonic()
            if ended or time.monotonic() > deadline:
                break
            time.sleep(1)  # reading the job table; the jobs' own pace decides when this ends

        executed: collections.Counter = collections.Counter()  # runs of each prompt, on every GPU together
        for comfyui_url in comfyui_urls:
            for job_id, prompt in requests.get(f"{comfyui_url}/emulator/stats", timeout=30).json()["prompts"].items():
                executed[job_id] += prompt["executed"]
        outputs = stored_outputs(aws, settings.bucket)
        lost = lost_jobs(load.accepted, records, executed, outputs)
        lost_before = lost_jobs(warm.accepted + single.accepted, records, executed, outputs)
        for job_id, why in list({**lost, **lost_before}.items())[:10]:
            print(f"lost {job_id}: {why}")
        if lost_before:
            print(f"lost before the load (warm-up and 1-client jobs): {len(lost_before)}")
        statuses = collections.Counter(records[j]["status"] for j in accepted if j in records)
        print(f"ended: {dict(statuses)}; refused {sum(load.refused.values())} {dict(load.refused)}; "
              f"errors {dict(load.errors)}; all jobs ended after {time.monotonic() - started:.0f} s")
        p99, floor_p99 = percentile(load.latencies_ms, 99), percentile(floor_lat, 99)
        single_p99 = percentile(single.latencies_ms, 99)
        print(f"submit p99 {p99:.1f} floor p99 {floor_p99:.1f} ratio {p99 / floor_p99:.2f}; "
              f"1 client p99 {single_p99:.1f} ratio {p99 / single_p99:.2f}")
        last = f"load submitted {load.submitted} accepted {len(load.accepted)} lost {len(lost)} p99 submit {p99:.0f}"
    print(last)  # after the stack has stopped, so nothing it logs while stopping comes after this line
    return 0


if __name__ == "__main__":
    sys.exit(main())
