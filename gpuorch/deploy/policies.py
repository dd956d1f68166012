"""The IAM policy documents of configs/deploy/iam, rendered for one deployment, and which role gets which.

The documents name their resources with ${VARIABLES}; `render_all` fills them from the account id and from the
GPUORCH_* settings, read by gpuorch's own Settings exactly as the processes will read them, so a renamed queue,
table, bucket or pool can never be missing from a policy. IAM's own policy variables (IAM_POLICY_VARIABLES, such as
${ec2:SourceInstanceARN}) are left for IAM to fill at each request. `gpuorch deploy` puts the rendered documents in its
CloudFormation template; `configs/deploy/iam/render.py` writes them to files for roles made by hand:

    set -a; . /etc/gpuorch/gpuorch.env; set +a        # the settings the processes will run with
    .venv/bin/python configs/deploy/iam/render.py --account-id 123456789012 --out build/iam

Without --account-id the account is asked of STS (GetCallerIdentity) with your current credentials.
It prints which role gets which file; a file whose feature is not configured (fallback instance types,
extra input buckets, model files read from S3, a KMS key of your own for the GPU volumes) is not written. It refuses
to write a document with a variable left unfilled.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from gpuorch.deploy.source import CHECKOUT
from gpuorch.errors import ConfigurationError
from gpuorch.settings import Settings

IAM_DIR = CHECKOUT / "configs" / "deploy" / "iam"
VARIABLE = re.compile(r"\$\{([^}]*)\}")
# Filled by IAM at each request, not by the renderer: the ARN of the instance whose role credentials signed it (the
# GPU role writes only the control table items keyed by it: lifecycle.live.instance_items).
IAM_POLICY_VARIABLES = ("ec2:SourceInstanceARN",)
# One statement resource per bucket named in GPUORCH_INPUT_BUCKETS.
PER_INPUT_BUCKET = "INPUT_BUCKET"
# One statement resource per S3 object (or mirror prefix) `gpuorch models sync` reads model files from.
PER_MODEL_OBJECT = "MODEL_OBJECT"
# One condition value per instance type the lifecycle may give a pool instance (its own and the fallbacks).
PER_INSTANCE_TYPE = "INSTANCE_TYPE"

# file -> who it is for. The role names are suggestions; DEPLOYMENT.md creates roles with these names.
POLICIES: dict[str, str] = {
    "api-policy.json": "gpuorch-api (API host)",
    "control-policy.json": "gpuorch-control (control worker + beat host)",
    "control-monitoring-policy.json": "gpuorch-control, with GPUORCH_MONITORING on (the default)",
    "control-fallback-types-policy.json": "gpuorch-control, only with GPUORCH_FALLBACK_INSTANCE_TYPES set",
    "control-ebs-key-policy.json": "gpuorch-control, only with GPUORCH_EBS_KMS_KEY set (starting encrypted instances)",
    "flower-policy.json": "gpuorch-control where Flower runs (and whoever runs `celery inspect`), with monitoring on",
    "gpu-instance-policy.json": "gpuorch-gpu (the GPU instance profile)",
    "gpu-monitoring-policy.json": "gpuorch-gpu, with GPUORCH_MONITORING on (the default)",
    "gpu-input-buckets-policy.json": "gpuorch-gpu, only with GPUORCH_INPUT_BUCKETS set",
    "gpu-models-policy.json": "gpuorch-gpu, only when model files come from S3 (GPUORCH_MODELS_MIRROR, s3:// sources)",
    "client-policy.json": "Python callers of task.delay() outside the API host (optional)",
    "provision-policy.json": "whoever runs `gpuorch provision` and `gpuorch keys` (optional; an administrator also can)",
    "ec2-trust-policy.json": "trust policy of the EC2 roles (gpuorch-gpu, and gpuorch-api/-control on EC2)",
    "ecs-tasks-trust-policy.json": "trust policy of gpuorch-api/-control as ECS task roles (instead of EC2's)",
}

# The two instance roles `gpuorch deploy` makes, and the documents each may get (those the settings need).
ROLE_POLICIES: dict[str, tuple[str, ...]] = {
    "gpu": ("gpu-instance-policy.json", "gpu-monitoring-policy.json", "gpu-input-buckets-policy.json",
            "gpu-models-policy.json"),
    "host": ("control-policy.json", "control-monitoring-policy.json", "control-fallback-types-policy.json",
             "control-ebs-key-policy.json", "flower-policy.json", "api-policy.json"),
}


class RenderError(ConfigurationError, ValueError):
    """A document cannot be rendered: a variable without a value, or a bad account id."""


def variables(settings: Settings, account_id: str) -> dict[str, str]:
    """Every ${VARIABLE} the documents may use, from the account id and the settings."""
    from gpuorch.jobs.store import OWNER_INDEX, STATUS_INDEX
    from lifecycle.live.instance_items import INSTANCE_ITEMS_INDEX

    if not re.fullmatch(r"\d{12}", account_id or ""):
        raise RenderError(f"an AWS account id is 12 digits, not {account_id!r}")
    return {
        "ACCOUNT_ID": account_id,
        "REGION": settings.region,
        "GPU_QUEUE": settings.gpu_queue,
        "GPU_LOW_QUEUE": settings.gpu_low_queue,
        "GPU_DLQ": settings.gpu_dead_letter_queue,
        "CONTROL_QUEUE": settings.control_queue,
        "JOB_TABLE": settings.job_table,
        "STATUS_INDEX": STATUS_INDEX,
        "OWNER_INDEX": OWNER_INDEX,
        "KEY_TABLE": settings.key_table,
        "RESULT_TABLE": settings.result_table,
        "CONTROL_TABLE": settings.control_table,
        "INSTANCE_ITEMS_INDEX": INSTANCE_ITEMS_INDEX,
        "BUCKET": settings.bucket,
        "GPU_POOL": settings.gpu_pool,
        "MONITORING_NAMESPACE": settings.monitoring_namespace,
        "EBS_KMS_KEY": settings.ebs_kms_key,
    }


def name_clashes(settings: Settings) -> list[str]:
    """Job queues whose names the monitoring documents' `<namespace>-*` wildcards would also cover."""
    prefix = f"{settings.monitoring_namespace}-"
    queues = (settings.gpu_queue, settings.gpu_low_queue, settings.gpu_dead_letter_queue, settings.control_queue)
    return [queue for queue in queues if queue.startswith(prefix)] if settings.monitoring else []


def fill(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name in IAM_POLICY_VARIABLES:
            return match.group(0)
        if name not in values:
            raise RenderError(f"no value for ${{{name}}} in {text!r}")
        return values[name]

    return VARIABLE.sub(one, text)


def render(document: Any, values: dict[str, str], per_item: dict[str, tuple[str, ...]] | None = None) -> Any:
    """`document` with every ${VARIABLE} filled; a list item naming a per-item variable (${INPUT_BUCKET},
    ${MODEL_OBJECT}) becomes one item per value of it."""
    per_item = per_item or {}
    if isinstance(document, dict):
        return {key: render(value, values, per_item) for key, value in document.items()}
    if isinstance(document, list):
        items: list[Any] = []
        for item in document:
            name = next((n for n in per_item if isinstance(item, str) and f"${{{n}}}" in item), None)
            if name is not None:
                items.extend(fill(item, {**values, name: value}) for value in per_item[name])
            else:
                items.append(render(item, values, per_item))
        return items
    if isinstance(document, str):
        for name in per_item:
            if f"${{{name}}}" in document:
                raise RenderError(f"${{{name}}} may only appear in a list: {document!r}")
        return fill(document, values)
    return document


def model_objects(settings: Settings) -> tuple[str, ...]:
    """bucket/key of each S3 object `gpuorch models sync` reads (bucket/prefix/* of a mirror): its mirror when
    GPUORCH_MODELS_MIRROR is set, else the s3:// sources the workflows in GPUORCH_WORKFLOWS_DIR declare."""
    from gpuorch.aws.s3 import parse_s3_prefix
    from gpuorch.workflows import load_workflows
    from gpuorch.workflows.models import model_files

    if settings.models_mirror:
        at = parse_s3_prefix(settings.models_mirror)
        return ("/".join(part for part in (at.bucket, at.key, "*") if part),)
    files = model_files(load_workflows(settings.workflows_dir), settings.models)
    return tuple(dict.fromkeys(f.source.removeprefix("s3://") for f in files if f.source.startswith("s3://")))


def wanted(name: str, settings: Settings) -> bool:
    """Whether `name` applies to these settings (the optional documents only when their feature is on)."""
    if name == "control-fallback-types-policy.json":
        return bool(settings.fallback_instance_types)
    if name == "control-ebs-key-policy.json":
        return bool(settings.ebs_kms_key)
    if name == "gpu-input-buckets-policy.json":
        return bool(settings.input_buckets)
    if name == "gpu-models-policy.json":
        return bool(model_objects(settings))
    if name in {"control-monitoring-policy.json", "gpu-monitoring-policy.json", "flower-policy.json"}:
        return bool(settings.monitoring)
    return True


def load(name: str) -> Any:
    return json.loads((IAM_DIR / name).read_text(encoding="utf-8"))


def render_all(settings: Settings, account_id: str, *, every: bool = False) -> dict[str, Any]:
    """file name -> rendered document, for the documents these settings need (`every`: all of them)."""
    values = variables(settings, account_id)
    clashes = name_clashes(settings)
    if clashes:
        raise RenderError(f"queue names {clashes} start with GPUORCH_MONITORING_NAMESPACE + '-': the monitoring "
                          "policies would let every process delete them; rename the queues or the namespace")
    per_item = {PER_INPUT_BUCKET: tuple(settings.input_buckets), PER_MODEL_OBJECT: model_objects(settings),
                PER_INSTANCE_TYPE: tuple(dict.fromkeys((settings.gpu_instance_type, *settings.fallback_instance_types)))}
    return {
        name: render(load(name), values, per_item)
        for name in POLICIES
        if every or wanted(name, settings)
    }


def role_documents(role: str, documents: dict[str, Any]) -> dict[str, Any]:
    """The rendered documents (`render_all`'s) of one of ROLE_POLICIES's roles."""
    return {name: documents[name] for name in ROLE_POLICIES[role] if name in documents}


def caller_account(region: str) -> str:
    import boto3

    return boto3.client("sts", region_name=region).get_caller_identity()["Account"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--account-id", help="12-digit AWS account id (default: ask STS)")
    parser.add_argument("--out", type=Path, default=Path("build/iam"), help="folder to write to [build/iam]")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
        documents = render_all(settings, args.account_id or caller_account(settings.region))
    except ConfigurationError as exc:  # settings, a workflow folder's models.json, or a variable left unfilled
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (args.out / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"{args.out / name}: {POLICIES[name]}")
    for name in POLICIES:
        if name not in documents:
            print(f"(not needed with these settings: {name}, {POLICIES[name]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
