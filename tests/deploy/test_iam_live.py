"""The IAM policies against the calls the real processes make.

Every process of a local stack signs its AWS calls with its own access key id (api, control, gpu, client,
flower, provision); a moto server records every request. The stack then runs jobs the ways a deployment
does: a cold start of the (moto) GPU instance by the lifecycle, REST submissions (an s3:// input, an inline
image, one cancelled), a `task.delay()` from a Python process with `.get()`, output downloads through their
presigned links, /health, the job list, a dead letter swept, Flower answering, the idle stop, and a warm
shutdown. Each recorded request must be allowed by the documents of its process's role, evaluated with the
resource ARNs and condition keys AWS would use; and each role must have made the calls that prove the run
exercised it.

Set GPUORCH_DEPLOY_RECORDING=<file> to keep the recording and a readable list of what each role called.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from gpuorch.aws.clients import AwsClients
from gpuorch_dev.local.procfile import load_procfile
from gpuorch_dev.local.stack import LocalStack, free_port
from gpuorch_dev.local.instances import create_local_instance
from gpuorch.settings import Settings, settings_env
from gpuorch.workflows import load_workflows
from gpuorch.workflows.models import comfyui_folders
from tests.conftest import wait_for
from tests.deploy import iam
from tests.deploy.calls import ROLE_DOCUMENTS
from tests.deploy.recording import Schema, read_recording
from tests.deploy.policies import rendered
from gpuorch_dev.local.paths import SAMPLE_IMAGE
from tests.paths import REPO
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = REPO
SAMPLE = SAMPLE_IMAGE
FLOWER = "flower" in load_procfile(ROOT / "Procfile") and Settings().monitoring
MOTO_ACCOUNT = "123456789012"
# Keys whose calls are not a deployed process's: the test's own set-up and checks.
SETUP_KEYS = {"testing", "local", "setup"}
ROLE_OF_KEY = {"api": "api", "control": "control", "gpu": "gpu", "client": "client", "flower": "flower",
               "provision": "provision"}
# Calls each role must have made, or the run did not exercise it: (action, part of the resource ARN).
EXPECTED = {
    "api": [("sqs:SendMessage", "gpu_tasks"), ("sqs:SendMessage", "gpu_control"), ("dynamodb:PutItem", "task_store"),
            ("dynamodb:UpdateItem", "task_store"), ("dynamodb:Query", "/index/"), ("s3:PutObject", "/inputs/"),
            ("s3:GetObject", "/results/"), ("s3:ListBucket", "gpuorch-jobs"), ("dynamodb:Query", "gpuorch_control"),
            ("dynamodb:GetItem", "gpuorch_keys"), ("dynamodb:PutItem", "gpuorch_control"),
            ("dynamodb:Query", "owner-created_at"), ("ec2:DescribeInstances", "*"),
            ("dynamodb:Query", "/index/instance_item"), ("dynamodb:BatchGetItem", "gpuorch_control"),
            ("dynamodb:BatchGetItem", "task_store")],
    "control": [("ec2:StartInstances", "instance/"), ("ec2:StopInstances", "instance/"),
                ("ec2:DescribeSpotPriceHistory", "*"),
                ("sqs:ReceiveMessage", "gpu_control"), ("sqs:SendMessage", "gpu_control"),
                ("sqs:ReceiveMessage", "dlq"), ("dynamodb:PutItem", "gpuorch_control"),
                ("dynamodb:UpdateItem", "task_store"), ("dynamodb:GetItem", "gpuorch_control"),
                ("s3:GetObject", "/results/"), ("dynamodb:Query", "/index/instance_item"),
                ("dynamodb:BatchGetItem", "gpuorch_control")],
    "gpu": [("sqs:ReceiveMessage", "gpu_tasks"), ("sqs:DeleteMessage", "gpu_tasks"), ("s3:GetObject", "/inputs/"),
            ("s3:PutObject", "/results/"), ("dynamodb:PutItem", "celery_results"),
            ("dynamodb:UpdateItem", "gpuorch_control"), ("sqs:SendMessage", "gpu_control")],
    "client": [("sqs:SendMessage", "gpu_tasks"), ("dynamodb:PutItem", "task_store"), ("s3:PutObject", "/inputs/"),
               ("dynamodb:GetItem", "celery_results"), ("dynamodb:BatchGetItem", "task_store")],
    "provision": [("sqs:CreateQueue", "gpu_tasks"), ("dynamodb:CreateTable", "task_store"),
                  ("s3:CreateBucket", "gpuorch-jobs"), ("dynamodb:CreateTable", "gpuorch_keys"),
                  ("dynamodb:PutItem", "gpuorch_keys")],
}

# moto's server with its request recorder, whose writes are serialized: the recorder appends each request to the
# file from the server's request threads without a lock, so two large requests at once could interleave.
MOTO_SCRIPT = """
import sys, threading
from moto.moto_api._internal.recorder.models import Recorder
lock, record = threading.Lock(), Recorder._record_request
def locked(self, *args, **kwargs):
    with lock:
        return record(self, *args, **kwargs)
Recorder._record_request = locked
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"""

# With monitoring (events and remote control through SNS) the workers publish events, and with Flower they answer
# its remote-control calls.
if Settings().monitoring:
    EXPECTED["gpu"].append(("sns:Publish", "-events"))
    EXPECTED["control"].append(("sns:Publish", "-events"))
if FLOWER:
    EXPECTED["gpu"].append(("sqs:SendMessage", "-reply-"))
    EXPECTED["control"].append(("sqs:SendMessage", "-reply-"))
    EXPECTED["flower"] = [("sqs:CreateQueue", "-events-"), ("sns:Subscribe", "-events"), ("sns:Publish", "-pidbox"),
                          ("sqs:ReceiveMessage", "-reply-")]

CLIENT_SCRIPT = """
import base64, sys
from gpuorch.tasks import qwen_image_edit
image = "data:image/png;base64," + base64.b64encode(open(sys.argv[1], "rb").read()).decode()
result = qwen_image_edit.delay(prompt="Paint the door red", images=[image], seed=3)
from gpuorch.tasks import wait
print(wait(result.id, timeout=120).status)
print(result.get(timeout=120))
"""




def answer_json(response: requests.Response) -> dict:
    assert response.headers.get("content-type", "").startswith("application/json"), \
        f"{response.request.method} {response.url}: {response.status_code} {response.text[:500]}"
    return response.json()


def role_env(key: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": key}


def dead_letter_body(job_id: str) -> str:
    envelope = {"body": "", "headers": {"id": job_id, "task": "gpuorch.tasks.camera_angle"}, "properties": {}}
    return base64.b64encode(json.dumps(envelope).encode()).decode()


def run_stack(tmp: Path) -> tuple[list[str], Schema, object]:
    """Run the whole exercise; returns the recorded lines, the schema, and the settings used."""
    stack = LocalStack(run_dir=tmp)
    recording = tmp / "moto-recording.jsonl"
    try:
        port = free_port()
        moto = stack.start("moto", [sys.executable, "-c", MOTO_SCRIPT, str(port)],
                           {"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(recording)})
        endpoint = f"http://127.0.0.1:{port}"
        stack.wait_until_ready(moto, lambda: requests.get(f"{endpoint}/moto-api/", timeout=2).ok)
        # The default names (this moto server is the test's own); short intervals so the run takes a minute.
        settings = dataclasses.replace(
            Settings(), aws_endpoint_url=endpoint, receive_wait_seconds=1, heartbeat_seconds=1,
            lifecycle_check_seconds=2, idle_stop_seconds=4, dead_letter_sweep_seconds=2, comfyui_retries=2,
            allow_insecure_inputs=True,  # the webhook receiver is on loopback
        )
        stack.env = settings_env(settings)

        provision = stack.start("provision", "gpuorch provision", role_env("provision"))
        assert provision.popen.wait(timeout=120) == 0, provision.tail()
        # API keys, made as an administrator does (the provision role): a user's, and an operator's.
        user, operator = requests.Session(), requests.Session()
        secrets = {}
        for session, flags in ((user, ""), (operator, " --operator")):
            made = stack.start(f"keys{flags.strip()}", f"gpuorch keys create --owner iam-test{flags} --json",
                               role_env("provision"))
            assert made.popen.wait(timeout=60) == 0, made.tail()
            created = json.loads(made.log_path.read_text()[made.log_path.read_text().index("{"):])
            session.headers["Authorization"] = f"Bearer {created['token']}"
            secrets[id(session)] = created["webhook_secret"]
        receiver = Receiver(secrets[id(user)])  # the job's webhook: the control worker signs and POSTs it

        setup = AwsClients(settings)
        setup.s3.upload_file(str(SAMPLE), settings.bucket, "inputs/house.png")
        # A spot instance: the lifecycle also reads its spot price (and prefers it: moto's price is tiny).
        instance_id = create_local_instance(setup.ec2, settings.gpu_pool, market="spot")
        settings = dataclasses.replace(settings, instance_id=instance_id)

        model_files = comfyui_folders(load_workflows(settings.workflows_dir), settings.models)
        comfyui_url = stack.start_emulator(tmp / "comfyui", model_files, 0.02)
        settings = dataclasses.replace(settings, comfyui_url=comfyui_url)
        stack.env = settings_env(settings)

        api_port, flower_port = free_port(), free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        [api] = stack.start_procfile(["api"], {**role_env("api"), "GPUORCH_API_BIND": f"127.0.0.1:{api_port}"})
        stack.wait_until_ready(api, lambda: requests.get(f"{api_url}/health", timeout=5).status_code == 200)
        stack.start_procfile(["control_worker", "beat"], role_env("control"))

        def state() -> str:
            return setup.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]

        # REST: an s3:// input; an inline image; a job cancelled at once. The first one waits for the GPU, which the
        # control worker starts (as on AWS, the GPU worker comes up once the instance runs): so the start is called
        # however fast the jobs run.
        by_uri = answer_json(user.post(f"{api_url}/api/v1/camera-angle/jobs", timeout=30, json={
            "image": f"s3://{settings.bucket}/inputs/house.png", "move": "top_down", "webhook": receiver.url}))["job_id"]
        # A request waiting for it while the GPU starts.
        assert answer_json(user.get(f"{api_url}/api/v1/jobs/{by_uri}", params={"wait": 1}, timeout=30))["status"]
        wait_for(lambda: state() in ("pending", "running"), 120, message="the control worker to start the GPU instance")
        [gpu] = stack.start_procfile(["gpu_worker"], role_env("gpu"))

        def gpu_ready() -> bool:
            assert gpu.running, f"the GPU worker exited:\n{gpu.tail()}"
            return "GPU worker ready" in gpu.log_path.read_text(errors="replace")

        wait_for(gpu_ready, 120, message="the GPU worker")
        with open(SAMPLE, "rb") as image:
            inline = answer_json(user.post(f"{api_url}/api/v1/qwen-image-edit/jobs", timeout=30,
                                               data={"params": json.dumps({"prompt": "Paint the house blue"})},
                                               files={"images": ("house.png", image, "image/png")}))["job_id"]
        cancelled = answer_json(user.post(f"{api_url}/api/v1/camera-angle/jobs", timeout=30, json={
            "image": f"s3://{settings.bucket}/inputs/house.png", "move": "close_up"}))["job_id"]
        user.post(f"{api_url}/api/v1/jobs/{cancelled}/cancel", timeout=30)

        # Python: task.delay() with an inline image, then .get().
        client = stack.start("client", [sys.executable, "-c", CLIENT_SCRIPT, str(SAMPLE)], role_env("client"))
        assert client.popen.wait(timeout=180) == 0, client.tail()

        def finished(job_id: str):
            # The operator's key: the task.delay() job has no owner, only operators see it.
            record = answer_json(operator.get(f"{api_url}/api/v1/jobs/{job_id}", timeout=30))
            return record if record["status"] in {"succeeded", "failed", "cancelled"} else None

        for job_id in (by_uri, inline, cancelled):
            record = wait_for(lambda: finished(job_id), 120, message=f"job {job_id}")
            assert record["status"] in ({"succeeded", "cancelled"} if job_id == cancelled else {"succeeded"}), record
        # Waiting for a job, its webhook deliveries (signed with its key's secret), as its owner sees them.
        assert answer_json(user.get(f"{api_url}/api/v1/jobs/{by_uri}", params={"wait": 5}, timeout=30))["status"] == \
            "succeeded"
        wait_for(lambda: len(receiver.verified()) >= 2, 60, message="the job's webhooks")
        # The webhook's output link, signed with the control worker's credentials, works.
        [ended] = [p for p in receiver.verified() if p["type"] == "job.succeeded"]
        assert requests.get(ended["data"]["outputs"][0]["url"], timeout=30).status_code == 200
        delivered = answer_json(user.get(f"{api_url}/api/v1/jobs/{by_uri}/deliveries", timeout=30))["deliveries"]
        assert {(d["event"], d["state"]) for d in delivered} == {("job.running", "delivered"),
                                                                 ("job.succeeded", "delivered")}
        receiver.close()
        output = finished(by_uri)["outputs"][0]["url"]
        assert requests.get(output, timeout=30).status_code == 200  # signed with the API's credentials
        for path in ("/health", "/api/v1/jobs", "/api/v1/jobs?status=succeeded&limit=5"):
            assert user.get(f"{api_url}{path}", timeout=30).status_code == 200, path
        for path in ("/api/v1/costs", "/api/v1/gpu", "/api/v1/jobs"):
            assert operator.get(f"{api_url}{path}", timeout=30).status_code == 200, path

        # A dead letter naming a finished job: the sweep reads it and leaves the record as it is.
        dlq = setup.sqs.get_queue_url(QueueName=settings.gpu_dead_letter_queue)["QueueUrl"]
        setup.sqs.send_message(QueueUrl=dlq, MessageBody=dead_letter_body(by_uri))
        peeks = []

        def swept() -> bool:
            """The sweep has received the letter: it holds it now, or it was received more often than we peeked."""
            peeks.append(1)
            messages = setup.sqs.receive_message(QueueUrl=dlq, AttributeNames=["ApproximateReceiveCount"],
                                                 VisibilityTimeout=0, WaitTimeSeconds=1).get("Messages", [])
            return not messages or int(messages[0]["Attributes"]["ApproximateReceiveCount"]) > len(peeks)

        wait_for(swept, 60, message="the dead-letter sweep")

        # Flower answers, and asks the workers for their state (remote control through SNS).
        if FLOWER:
            login = ("ops", "iam-test-password")  # Flower refuses to start without one
            [flower] = stack.start_procfile(["flower"], {**role_env("flower"), "GPUORCH_FLOWER_PORT": str(flower_port),
                                                         "GPUORCH_FLOWER_BASIC_AUTH": ":".join(login)})
            stack.wait_until_ready(flower, lambda: requests.get(
                f"http://127.0.0.1:{flower_port}/healthcheck", timeout=5).ok, timeout=60)
            answer = requests.get(f"http://127.0.0.1:{flower_port}/workers?refresh=1", auth=login, timeout=30)
            assert answer.status_code == 200, answer.status_code
            # Its API asks the workers over remote control and answers once they have: Flower's calls are made.
            workers = requests.get(f"http://127.0.0.1:{flower_port}/api/workers", params={"refresh": 1},
                                   auth=login, timeout=60)
            assert workers.status_code == 200 and workers.json(), workers.text
            flower.stop()

        # The idle stop.
        wait_for(lambda: state() == "stopped", 120, message="the idle GPU instance to be stopped")

        schema = Schema(settings.region, MOTO_ACCOUNT)
        for table in (settings.job_table, settings.result_table, settings.control_table):
            described = setup.dynamodb.describe_table(TableName=table)["Table"]
            hash_key = next(k["AttributeName"] for k in described["KeySchema"] if k["KeyType"] == "HASH")
            indexes = {i["IndexName"]: next(k["AttributeName"] for k in i["KeySchema"] if k["KeyType"] == "HASH")
                       for i in described.get("GlobalSecondaryIndexes", [])}
            schema.tables[table] = (hash_key, indexes)
        item = setup.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        schema.instance_tags[instance_id] = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
        # The GPU worker plays that instance: on AWS its role credentials carry the instance's ARN.
        schema.source_instances["gpu"] = iam.instance_arn(settings.region, MOTO_ACCOUNT, instance_id)
    finally:
        stack.stop()  # a warm shutdown of every process: their last calls are recorded too
    return recording.read_text().splitlines(), schema, settings


def describe(recorded) -> str:
    lines = defaultdict(set)
    for call in recorded:
        for request in call.requests:
            lines[call.key].add(f"{request.action} {request.resource} {dict(request.context) or ''}".rstrip())
    return "\n".join(f"[{key}]\n  " + "\n  ".join(sorted(lines[key])) for key in sorted(lines))


def test_every_call_of_every_process_is_allowed_by_its_role(tmp_path):
    lines, schema, settings = run_stack(tmp_path)
    recorded = [r for r in read_recording(lines, schema) if r.key not in SETUP_KEYS]
    keep = os.environ.get("GPUORCH_DEPLOY_RECORDING")
    if keep:
        Path(keep).write_text("\n".join(lines) + "\n")
        Path(keep + ".txt").write_text(describe(recorded) + "\n")

    strangers = sorted({r.key for r in recorded} - set(ROLE_OF_KEY))
    assert not strangers, f"requests signed by keys no role owns: {strangers}"
    documents = rendered(settings, MOTO_ACCOUNT)
    refusals = defaultdict(list)
    for call in recorded:
        role = ROLE_OF_KEY[call.key]
        for request in call.requests:
            if not iam.allowed([documents[d] for d in ROLE_DOCUMENTS[role]], request):
                refusals[role].append(str(request))
    assert not refusals, "calls AWS would refuse:\n" + "\n".join(
        f"[{role}] {line}" for role, lines_ in refusals.items() for line in sorted(set(lines_)))

    made = defaultdict(set)
    for call in recorded:
        for request in call.requests:
            made[ROLE_OF_KEY[call.key]].add((request.action, request.resource))
    missing = [
        f"{role}: {action} on *{part}*"
        for role, expected in EXPECTED.items()
        for action, part in expected
        if not any(a == action and part in r for a, r in made[role])
    ]
    assert not missing, "the run did not exercise:\n" + "\n".join(missing) + "\n\n" + describe(recorded)
