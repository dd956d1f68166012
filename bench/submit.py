"""REST submission throughput and latency against the local stack, beside the floor of plain boto3 calls.

The floor is what a submission cannot avoid: one DynamoDB put of the job record, one conditional write of the
key's rate-limit state (a limit that holds across API hosts needs shared state), and one SQS send of its
message, done with plain boto3 by the same number of concurrent clients on the same moto server. Each client
sends an API key of its own, whose rate limit is set high enough never to refuse: a submission pays for the
key check and the backlog check too (both cached per process).
Last line: `submit p50 <ms> floor p50 <ms> ratio <r>` (target: ratio at most 1.5). `--quick` is a few seconds' run
that tests/bench/test_benches.py makes, so the bench keeps working; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuorch.access.keys import KeyStore  # noqa: E402
from gpuorch.aws.clients import AwsClients  # noqa: E402
from gpuorch.provision import Provisioner  # noqa: E402
from gpuorch_dev.local.stack import LocalStack, free_port, use_local_credentials  # noqa: E402
from gpuorch.settings import Settings, settings_env  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def run_clients(clients: int, total: int, one_call) -> tuple[list[float], float]:
    """Run `total` calls of one_call(i) over `clients` threads; (latencies in ms, wall seconds)."""

    def timed(i: int) -> float:
        start = time.perf_counter()
        one_call(i)
        return (time.perf_counter() - start) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(timed, range(total)))
    return latencies, time.perf_counter() - started


def floor_call(aws: AwsClients, settings: Settings, queue_url: str, params: dict):
    """The unavoidable work of one submission, in plain boto3."""

    def call(_i: int) -> None:
        job_id = str(uuid.uuid4())
        now_ms = int(time.time() * 1000)
        aws.dynamodb.put_item(
            TableName=settings.control_table,
            Item={"pk": {"S": f"rate#{threading.get_ident()}"}, "sk": {"S": "gcra"}, "tat_ms": {"N": str(now_ms + 1)}},
            ConditionExpression="attribute_not_exists(pk) OR tat_ms <= :now",
            ExpressionAttributeValues={":now": {"N": str(now_ms)}},
        )
        aws.dynamodb.put_item(
            TableName=settings.job_table,
            Item={
                "task_id": {"S": job_id}, "status": {"S": "queued"}, "workflow": {"S": "camera-angle"},
                "created_at": {"S": "2026-01-01T00:00:00.000000Z"},
                "params": {"S": json.dumps(params)},
            },
            ConditionExpression="attribute_not_exists(task_id)",
        )
        body = base64.b64encode(json.dumps({"id": job_id, "kwargs": params}).encode()).decode()
        aws.sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    return call


def drain(aws: AwsClients, queue_url: str) -> None:
    """Empty the queue by receiving and deleting (PurgeQueue is allowed once a minute)."""
    while True:
        batch = aws.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return
        aws.sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def report(name: str, latencies: list[float], wall: float) -> None:
    print(
        f"{name:7} n={len(latencies)} throughput={len(latencies) / wall:7.1f}/s "
        f"p50={percentile(latencies, 50):6.1f} ms p99={percentile(latencies, 99):6.1f} ms "
        f"mean={statistics.fmean(latencies):6.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--round-size", type=int, default=50, help="Calls per alternating round.")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="2 clients, 20 requests in rounds of 10: checks the bench runs (make test), "
                             "measures nothing")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests, args.round_size = 2, 20, 10
    use_local_credentials()

    with tempfile.TemporaryDirectory() as tmp, LocalStack(run_dir=Path(tmp)) as stack:
        endpoint = stack.start_moto()
        settings = Settings(aws_endpoint_url=endpoint, receive_wait_seconds=1)
        aws = AwsClients(settings)
        Provisioner(aws, settings).run()
        image = f"s3://{settings.bucket}/inputs/house.png"
        params = {"image": image, "move": "rotate_left", "degrees": 45}

        port = free_port()
        stack.env = settings_env(settings)
        [api] = stack.start_procfile(["api"], {"GPUORCH_API_BIND": f"127.0.0.1:{port}",
                                               "GPUORCH_API_WORKERS": str(args.api_workers)})
        url = f"http://127.0.0.1:{port}"
        stack.wait_until_ready(api, lambda: requests.get(f"{url}/health", timeout=5).status_code == 200)

        local = threading.local()  # one keep-alive session, with a key of its own, per client thread
        keys = KeyStore(aws.dynamodb, settings.key_table)

        def client_session() -> requests.Session:
            session = requests.Session()
            _key, token = keys.create("bench", name="bench/submit.py", rate_per_minute=1_000_000, burst=1000)
            session.headers["Authorization"] = f"Bearer {token}"
            return session

        def submit(_i: int) -> None:
            session = getattr(local, "session", None) or setattr(local, "session", client_session()) or local.session
            answer = session.post(f"{url}/api/v1/camera-angle/jobs", json=params, timeout=30)
            if answer.status_code != 202:
                raise RuntimeError(f"submission refused: {answer.status_code} {answer.text}")

        queue_url = aws.queue_url(settings.gpu_queue)
        floor = floor_call(aws, settings, queue_url, params)
        # Warm both paths (connections, gunicorn workers, kombu's queue cache) before measuring.
        run_clients(args.clients, args.clients * 4, submit)
        run_clients(args.clients, args.clients * 4, floor)

        # moto's SendMessage slows down as its queue grows: measure both paths in alternating rounds,
        # each from an empty queue, so neither inherits the other's backlog.
        floor_lat: list[float] = []
        submit_lat: list[float] = []
        floor_wall = submit_wall = 0.0
        rounds = max(1, args.requests // args.round_size)
        for round_number in range(rounds):
            order = [("floor", floor), ("submit", submit)]
            for name, call in order if round_number % 2 == 0 else reversed(order):
                drain(aws, queue_url)
                latencies, wall = run_clients(args.clients, args.round_size, call)
                if name == "floor":
                    floor_lat += latencies
                    floor_wall += wall
                else:
                    submit_lat += latencies
                    submit_wall += wall
        print(f"clients={args.clients} requests={args.requests} api_workers={args.api_workers} (moto server on loopback)")
        report("floor", floor_lat, floor_wall)
        report("submit", submit_lat, submit_wall)
        submit_p50, floor_p50 = percentile(submit_lat, 50), percentile(floor_lat, 50)
        print(f"submit p50 {submit_p50:.1f} floor p50 {floor_p50:.1f} ratio {submit_p50 / floor_p50:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
