"""The IAM policy documents in configs/deploy/iam: well formed, rendered from the settings, granting each role
exactly the calls its code makes (tests/deploy/calls.py), and nothing the code does not call."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from botocore import xform_name

from gpuorch.aws.ec2 import InstanceArns
from gpuorch.settings import Settings
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from lifecycle.live.instance_items import HEARTBEAT, REFUSAL, item_key
from tests.deploy import iam
from tests.deploy.calls import (CALLS, GPU_INSTANCE, NEEDS_NO_PERMISSION, NOT_CALLED_ON_AWS, POOL_TAG, ROLE_DOCUMENTS,
                                role_requests)
from tests.deploy.policies import ACCOUNT, IAM_DIR, ROOT, full_settings, render, rendered

DOCUMENTS = sorted(IAM_DIR.glob("*.json"))
# What a deployment runs; the dev tools (the ComfyUI emulator, the local stack) are outside, in devtools/.
CODE_ROOTS = ("gpuorch", "lifecycle", "workers", "webapp")
# Run by the operator with administrator credentials (it makes the roles themselves), never by a process of a role.
OPERATOR_CODE = ("gpuorch/deploy/", "gpuorch/cli/deploy.py")


def test_every_document_is_listed_by_the_renderer():
    assert sorted(p.name for p in DOCUMENTS) == sorted(render.POLICIES)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_document_is_a_well_formed_policy(path):
    document = json.loads(path.read_text())
    assert iam.grammar_problems(document, trust=path.name.endswith("trust-policy.json")) == []


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_document_names_only_variables_the_renderer_fills(path):
    names = set(re.findall(r"\$\{([^}]*)\}", path.read_text()))
    known = set(render.variables(Settings(), ACCOUNT)) | {render.PER_INPUT_BUCKET, render.PER_MODEL_OBJECT,
                                                          render.PER_INSTANCE_TYPE} | set(render.IAM_POLICY_VARIABLES)
    assert names <= known, f"unknown variables: {sorted(names - known)}"


def test_rendered_documents_are_complete_and_fit_a_managed_policy():
    for name, document in rendered(full_settings()).items():
        text = json.dumps(document)
        assert set(re.findall(r"\$\{([^}]*)\}", text)) <= set(render.IAM_POLICY_VARIABLES), name  # IAM fills those
        assert iam.grammar_problems(document, trust=name.endswith("trust-policy.json")) == [], name
        assert iam.minified_length(document) < iam.MANAGED_POLICY_LIMIT, name


@pytest.mark.parametrize("role", sorted(ROLE_DOCUMENTS))
def test_role_documents_fit_as_inline_policies(role):
    """IAM allows 10,240 characters of inline policies per role (white space not counted)."""
    documents = rendered(full_settings())
    assert sum(iam.minified_length(documents[d]) for d in ROLE_DOCUMENTS[role]) < 10240


def test_rendering_follows_the_settings():
    settings = full_settings(gpu_queue="jobs-q", bucket="acme-gpu", gpu_pool="edit", region="eu-west-1")
    documents = rendered(settings, "210987654321")
    text = json.dumps(documents)
    assert "arn:aws:sqs:eu-west-1:210987654321:jobs-q" in text
    assert "arn:aws:s3:::acme-gpu/results/*" in text
    assert '"aws:ResourceTag/gpuorch:pool": "edit"' in text
    inputs = documents["gpu-input-buckets-policy.json"]["Statement"][0]["Resource"]
    assert inputs == ["arn:aws:s3:::partner-uploads/*", "arn:aws:s3:::archive-images/*"]
    plain = render.render_all(Settings(), ACCOUNT)
    assert "gpu-input-buckets-policy.json" not in plain and "control-fallback-types-policy.json" not in plain


def test_the_models_document_grants_reading_exactly_where_the_model_files_come_from(tmp_path):
    mirrored = render.render_all(full_settings(models_mirror="s3://acme-models/qwen/v1/"), ACCOUNT)
    assert mirrored["gpu-models-policy.json"]["Statement"][0]["Resource"] == ["arn:aws:s3:::acme-models/qwen/v1/*"]
    # The shipped workflows read their files from Hugging Face over HTTPS: nothing to grant.
    assert "gpu-models-policy.json" not in render.render_all(Settings(), ACCOUNT)
    shutil.copytree(BUILTIN_WORKFLOWS / "camera-angle", tmp_path / "camera-angle")
    declared = json.loads((tmp_path / "camera-angle" / "models.json").read_text())
    for model in declared["models"]:
        model["source"] = f"s3://acme-models/published/{model['name']}"
    (tmp_path / "camera-angle" / "models.json").write_text(json.dumps(declared))
    own = render.render_all(dataclasses.replace(Settings(), workflows_dir=str(tmp_path)), ACCOUNT)
    assert own["gpu-models-policy.json"]["Statement"][0]["Resource"] == [
        f"arn:aws:s3:::acme-models/published/{model['name']}" for model in declared["models"]]


def test_the_gpu_role_reads_model_files_only_under_the_mirror():
    documents = rendered(full_settings())
    inside = iam.Request("s3:GetObject", iam.object_arn("acme-models", "qwen/vae/v.safetensors"))
    outside = iam.Request("s3:GetObject", iam.object_arn("acme-models", "other/v.safetensors"))
    assert iam.allowed([documents[d] for d in ROLE_DOCUMENTS["gpu+models"]], inside)
    assert not iam.allowed([documents[d] for d in ROLE_DOCUMENTS["gpu+models"]], outside)
    assert not iam.allowed([documents[d] for d in ROLE_DOCUMENTS["gpu"]], inside)


def test_monitoring_documents_follow_the_monitoring_setting():
    on = render.render_all(full_settings(monitoring_namespace="acme"), ACCOUNT)
    assert {"gpu-monitoring-policy.json", "control-monitoring-policy.json", "flower-policy.json"} <= set(on)
    assert "arn:aws:sns:us-east-1:123456789012:acme-events" in json.dumps(on["gpu-monitoring-policy.json"])
    off = render.render_all(full_settings(monitoring=False), ACCOUNT)
    assert not {"gpu-monitoring-policy.json", "control-monitoring-policy.json", "flower-policy.json"} & set(off)


def test_a_gpu_instance_may_write_only_its_own_heartbeat_and_refusal():
    """DynamoDB's IAM conditions see an item's partition key alone: the heartbeat and the refusal carry the instance's
    ARN there, and the GPU role writes the control table only under the ARN IAM gives the instance whose role
    credentials sign the request (${ec2:SourceInstanceARN}). Another instance's refusal would get it stopped and
    held."""
    settings = full_settings()
    document = rendered(settings)["gpu-instance-policy.json"]
    control = iam.table_arn(settings.region, ACCOUNT, settings.control_table)
    writes = {s["Sid"]: (s["Action"], s["Condition"]) for s in document["Statement"] if s["Resource"] == control}
    assert writes == {
        "OwnHeartbeatOnly": ("dynamodb:UpdateItem", {"ForAllValues:StringEquals": {
            "dynamodb:LeadingKeys": [f"{HEARTBEAT}#${{ec2:SourceInstanceARN}}"]}}),
        "OwnRefusalOnly": ("dynamodb:PutItem", {"ForAllValues:StringEquals": {
            "dynamodb:LeadingKeys": [f"{REFUSAL}#${{ec2:SourceInstanceARN}}"]}}),
    }
    # The stores key the items with the ARN as IAM writes it (gpuorch.aws.ec2.InstanceArns).
    arn = InstanceArns("aws", ACCOUNT, settings.region).of(GPU_INSTANCE)
    assert arn == iam.instance_arn(settings.region, ACCOUNT, GPU_INSTANCE)
    gpu = [rendered(settings)[d] for d in ROLE_DOCUMENTS["gpu"]]

    def writes_item(action: str, kind: str, owner: str, source: str | None = arn) -> bool:
        context = {"dynamodb:LeadingKeys": [item_key(kind, owner)["pk"]]}
        if source is not None:
            context["ec2:SourceInstanceARN"] = source
        return iam.allowed(gpu, iam.Request(action, control, context))

    other = InstanceArns("aws", ACCOUNT, settings.region).of("i-0fedcba9876543210")
    assert writes_item("dynamodb:UpdateItem", HEARTBEAT, arn) and writes_item("dynamodb:PutItem", REFUSAL, arn)
    assert not writes_item("dynamodb:UpdateItem", HEARTBEAT, other)
    assert not writes_item("dynamodb:PutItem", REFUSAL, other)
    assert not writes_item("dynamodb:PutItem", REFUSAL, arn, source=None)  # credentials not from an instance


def test_the_instance_type_change_is_limited_to_the_pool_and_fallback_types():
    """ModifyInstanceAttribute could also change a pool instance's user data: only a type change to the pool's own
    type or a fallback type is granted."""
    document = rendered(full_settings(fallback_instance_types=("g6e.xlarge", "g6.2xlarge")))
    control = [document[d] for d in ROLE_DOCUMENTS["control+fallback"]]
    arn = iam.instance_arn("us-east-1", ACCOUNT, "i-0123456789abcdef0")
    tagged = {"aws:ResourceTag/gpuorch:pool": "gpuorch"}

    def modify(**context) -> bool:
        return iam.allowed(control, iam.Request("ec2:ModifyInstanceAttribute", arn, {**tagged, **context}))

    assert modify(**{"ec2:Attribute/InstanceType": "g6.2xlarge"})
    assert modify(**{"ec2:Attribute/InstanceType": "g6e.2xlarge"})  # back to the pool's own type
    assert not modify(**{"ec2:Attribute/InstanceType": "p5.48xlarge"})
    assert not modify(**{"ec2:Attribute/UserData": "IyEvYmluL3NoCg=="})


def test_a_gpu_volume_key_of_your_own_lets_the_control_role_create_grants_for_ec2_only():
    """StartInstances on an instance whose volumes a customer-managed key encrypts makes EC2 create a grant on that
    key in the caller's name: without kms:CreateGrant the instance goes from pending back to stopped."""
    documents = rendered(full_settings())
    key = documents["control-ebs-key-policy.json"]["Statement"][0]["Resource"]
    assert key.startswith("arn:aws:kms:us-east-1:123456789012:key/")
    grant = [documents["control-ebs-key-policy.json"]]
    assert iam.allowed(grant, iam.Request("kms:CreateGrant", key, {"kms:GrantIsForAWSResource": "true"}))
    assert not iam.allowed(grant, iam.Request("kms:CreateGrant", key, {"kms:GrantIsForAWSResource": "false"}))
    assert "control-ebs-key-policy.json" not in render.render_all(Settings(), ACCOUNT)


def test_renderer_refuses_job_queues_inside_the_monitoring_namespace():
    """The monitoring documents grant DeleteQueue on `<namespace>-*`: a job queue must not match it."""
    with pytest.raises(render.RenderError, match="gpuorch-jobs"):
        render.render_all(full_settings(gpu_queue="gpuorch-jobs"), ACCOUNT)


def test_renderer_refuses_a_bad_account_id():
    with pytest.raises(render.RenderError):
        render.render_all(Settings(), "12345")


@pytest.mark.parametrize("role", sorted(ROLE_DOCUMENTS))
def test_role_is_granted_every_call_its_code_makes(role):
    settings = full_settings()
    documents = rendered(settings)
    refused = iam.refused([documents[d] for d in ROLE_DOCUMENTS[role]], role_requests(role, settings, ACCOUNT))
    assert refused == [], "\n".join(map(str, refused))


@pytest.mark.parametrize("role", sorted(ROLE_DOCUMENTS))
def test_role_is_granted_nothing_its_code_does_not_call(role):
    """Each action of each statement must be needed by a call of the role on one of the statement's resources."""
    settings = full_settings()
    documents = rendered(settings)
    needed = role_requests(role, settings, ACCOUNT)
    unneeded = []
    for name in ROLE_DOCUMENTS[role]:
        for statement in documents[name]["Statement"]:
            for action in iam.as_list(statement["Action"]):
                for resource in iam.as_list(statement["Resource"]):
                    if not any(r.action == action and (resource == "*" or iam.wildcard_match(resource, r.resource))
                               for r in needed):
                        unneeded.append(f"{name} {statement['Sid']}: {action} on {resource}")
    assert unneeded == [], "\n".join(unneeded)


def refusals() -> list[tuple[str, iam.Request]]:
    """What each role must not be able to do, however its code changes."""
    s = full_settings()
    a, r = ACCOUNT, s.region
    gpu_queue, control_queue = iam.queue_arn(r, a, s.gpu_queue), iam.queue_arn(r, a, s.control_queue)
    control_table, job_table = iam.table_arn(r, a, s.control_table), iam.table_arn(r, a, s.job_table)
    pool_instance = iam.instance_arn(r, a, GPU_INSTANCE)
    other_instance = iam.instance_arn(r, a, "i-0fedcba9876543210")
    own_beat, own_refusal = f"heartbeat#{pool_instance}", f"refusal#{pool_instance}"
    other_beat, other_refusal = f"heartbeat#{other_instance}", f"refusal#{other_instance}"
    from_gpu = {"ec2:SourceInstanceARN": pool_instance}
    lock = {"dynamodb:LeadingKeys": ["lock"]}
    cases = [
        ("gpu", iam.Request("ec2:StartInstances", pool_instance, {f"aws:ResourceTag/{POOL_TAG}": s.gpu_pool})),
        ("gpu", iam.Request("ec2:StopInstances", pool_instance, {f"aws:ResourceTag/{POOL_TAG}": s.gpu_pool})),
        # The GPU worker sends webhook deliveries to the control queue (QueueWebhookDeliveries), never lifecycle work:
        # what it may send there only asks the control worker to deliver what the job records say.
        ("gpu", iam.Request("sqs:ReceiveMessage", control_queue)),
        # Webhook secrets sign: only the control worker reads them (gpuorch/webhooks/secrets.py).
        *[(role, iam.Request("dynamodb:GetItem", control_table, {"dynamodb:LeadingKeys": ["webhook-secret"]}))
          for role in ("api", "gpu", "client", "flower")],
        ("gpu", iam.Request("dynamodb:PutItem", control_table, lock)),
        ("gpu", iam.Request("dynamodb:PutItem", control_table, {"dynamodb:LeadingKeys": ["status"]})),
        ("gpu", iam.Request("dynamodb:PutItem", control_table, {"dynamodb:LeadingKeys": [own_beat], **from_gpu})),
        ("gpu", iam.Request("dynamodb:DeleteItem", control_table, {"dynamodb:LeadingKeys": [own_refusal], **from_gpu})),
        ("gpu", iam.Request("dynamodb:UpdateItem", control_table, {"dynamodb:LeadingKeys": [own_refusal], **from_gpu})),
        # Another instance's heartbeat or refusal (a refusal gets an instance stopped and held).
        ("gpu", iam.Request("dynamodb:UpdateItem", control_table, {"dynamodb:LeadingKeys": [other_beat], **from_gpu})),
        ("gpu", iam.Request("dynamodb:PutItem", control_table, {"dynamodb:LeadingKeys": [other_refusal], **from_gpu})),
        # The keys of an earlier release, which named no instance.
        ("gpu", iam.Request("dynamodb:UpdateItem", control_table, {"dynamodb:LeadingKeys": ["heartbeat"], **from_gpu})),
        ("gpu", iam.Request("dynamodb:PutItem", control_table, {"dynamodb:LeadingKeys": ["refusal"], **from_gpu})),
        # The role's credentials used off the instance they were issued to: no instance ARN to match.
        ("gpu", iam.Request("dynamodb:PutItem", control_table, {"dynamodb:LeadingKeys": [own_refusal]})),
        ("gpu", iam.Request("dynamodb:BatchGetItem", control_table,
                            {"dynamodb:LeadingKeys": [own_refusal], **from_gpu})),
        ("gpu", iam.Request("dynamodb:UpdateItem", control_table, {"dynamodb:LeadingKeys": ["run-head"]})),
        ("gpu", iam.Request("dynamodb:PutItem", job_table)),
        ("gpu", iam.Request("s3:PutObject", iam.object_arn(s.bucket, "inputs/x.png"))),
        ("gpu", iam.Request("s3:DeleteObject", iam.object_arn(s.bucket, "results/x.png"))),
        ("api", iam.Request("sqs:ReceiveMessage", gpu_queue)),
        ("api", iam.Request("sqs:DeleteMessage", gpu_queue)),
        ("api", iam.Request("ec2:StartInstances", pool_instance, {f"aws:ResourceTag/{POOL_TAG}": "other-pool"})),
        ("api", iam.Request("ec2:ModifyInstanceAttribute", pool_instance, {f"aws:ResourceTag/{POOL_TAG}": s.gpu_pool})),
        ("api", iam.Request("dynamodb:PutItem", iam.table_arn(r, a, s.key_table))),
        ("api", iam.Request("dynamodb:Scan", iam.table_arn(r, a, s.key_table))),
        ("api", iam.Request("dynamodb:PutItem", control_table, {"dynamodb:LeadingKeys": ["heartbeat#i-1"]})),
        ("api", iam.Request("s3:PutObject", iam.object_arn(s.bucket, "results/x.png"))),
        ("api", iam.Request("s3:GetObject", iam.object_arn(s.bucket, "inputs/x.png"))),
        ("api", iam.Request("dynamodb:PutItem", control_table, lock)),
        ("api", iam.Request("dynamodb:GetItem", control_table, {"dynamodb:LeadingKeys": [own_beat]})),
        ("api", iam.Request("dynamodb:PutItem", control_table, {"dynamodb:LeadingKeys": [own_refusal]})),
        ("api", iam.Request("dynamodb:DeleteItem", control_table, {"dynamodb:LeadingKeys": [own_beat]})),
        ("api", iam.Request("dynamodb:BatchGetItem", control_table, {"dynamodb:LeadingKeys": [own_beat, "lock"]})),
        ("api", iam.Request("dynamodb:Query", iam.table_arn(r, a, s.control_table, "other-index"))),
        ("api", iam.Request("dynamodb:Scan", job_table)),
        ("control", iam.Request("ec2:StartInstances", pool_instance, {f"aws:ResourceTag/{POOL_TAG}": "other-pool"})),
        ("control", iam.Request("ec2:StopInstances", pool_instance, {})),
        ("control", iam.Request("ec2:TerminateInstances", pool_instance, {f"aws:ResourceTag/{POOL_TAG}": s.gpu_pool})),
        ("control", iam.Request("ec2:ModifyInstanceAttribute", pool_instance,
                                {f"aws:ResourceTag/{POOL_TAG}": s.gpu_pool})),
        ("control", iam.Request("sqs:SendMessage", gpu_queue)),
        ("control", iam.Request("sqs:DeleteMessage", iam.queue_arn(r, a, s.gpu_dead_letter_queue))),
        ("control", iam.Request("s3:GetObject", iam.object_arn(s.bucket, "inputs/x.png"))),
        ("client", iam.Request("sqs:ReceiveMessage", gpu_queue)),
        ("client", iam.Request("dynamodb:UpdateItem", job_table)),
        ("client", iam.Request("dynamodb:PutItem", iam.table_arn(r, a, s.result_table))),
        ("flower", iam.Request("sqs:ReceiveMessage", gpu_queue)),
        ("flower", iam.Request("sqs:DeleteQueue", gpu_queue)),
        ("flower", iam.Request("sqs:DeleteQueue", control_queue)),
    ]
    for role in ROLE_DOCUMENTS:
        cases += [
            (role, iam.Request("sqs:DeleteQueue", gpu_queue)),
            (role, iam.Request("sqs:PurgeQueue", gpu_queue)),
            (role, iam.Request("dynamodb:DeleteTable", job_table)),
            (role, iam.Request("s3:DeleteBucket", iam.bucket_arn(s.bucket))),
            (role, iam.Request("s3:PutBucketPolicy", iam.bucket_arn(s.bucket))),
            (role, iam.Request("iam:PassRole", f"arn:aws:iam::{a}:role/gpuorch-gpu")),
        ]
    return cases


@pytest.mark.parametrize("role,request_", refusals(), ids=lambda x: str(x).split("  (")[0] if isinstance(x, iam.Request) else x)
def test_role_cannot(role, request_):
    documents = rendered(full_settings())
    assert not iam.allowed([documents[d] for d in ROLE_DOCUMENTS[role]], request_)


def boto3_operations_named_in_code() -> dict[str, list[str]]:
    """operation (boto3 snake_case) -> where, for every AWS operation name the deployed code calls or names."""
    import botocore.session

    session = botocore.session.get_session()
    operations = {xform_name(op) for svc in ("sqs", "sns", "dynamodb", "s3", "ec2", "sts")
                  for op in session.get_service_model(svc).operation_names}
    pattern = re.compile(r"\.([a-z][a-z0-9_]*)\(|[\"']([a-z][a-z0-9_]*)[\"']")
    found: dict[str, list[str]] = {}
    for root in CODE_ROOTS:
        for path in sorted((ROOT / root).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(OPERATOR_CODE):
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                for match in pattern.finditer(line):
                    name = match.group(1) or match.group(2)
                    if name in operations:
                        found.setdefault(name, []).append(f"{relative}:{number}")
    return found


def test_every_aws_operation_in_the_code_is_granted_to_some_role_or_accounted_for():
    """A new boto3 call fails here until it is added to tests/deploy/calls.py and to its role's policy."""
    accounted = ({xform_name(call.operation) for calls in CALLS.values() for call in calls} | set(NOT_CALLED_ON_AWS)
                 | set(NEEDS_NO_PERMISSION))
    missing = {op: where for op, where in boto3_operations_named_in_code().items() if op not in accounted}
    assert not missing, "AWS operations no policy accounts for (add them to tests/deploy/calls.py and the " \
                        "policy of the process that calls them):\n" + "\n".join(
                            f"{op}: {', '.join(where)}" for op, where in sorted(missing.items()))


def test_render_command_writes_the_documents_for_the_environments_settings(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "GPUORCH_BUCKET": "acme-gpu", "GPUORCH_INPUT_BUCKETS": "partner"}
    answer = subprocess.run([sys.executable, str(IAM_DIR / "render.py"), "--account-id", ACCOUNT, "--out", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert "gpu-input-buckets-policy.json" in written and "control-fallback-types-policy.json" not in written
    assert "arn:aws:s3:::acme-gpu/results/*" in (tmp_path / "gpu-instance-policy.json").read_text()
    assert "not needed with these settings: control-fallback-types-policy.json" in answer.stdout
