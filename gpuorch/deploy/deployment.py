"""One `gpuorch deploy`: gather and check what the stack needs, build its template, apply it, leave the GPU stopped."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from gpuorch.aws.clients import AwsClients
from gpuorch.deploy.images import GPU_IMAGE_PARAMETER, HOST_IMAGE_PARAMETER, Image, resolve_image
from gpuorch.deploy.network import Placement, choose_placement, find_subnets, offered_zones
from gpuorch.deploy.policies import render_all
from gpuorch.deploy.source import CHECKOUT, Release, make_release
from gpuorch.deploy.stack import (Outcome, apply_stack, ensure_release_bucket, stop_pool, template_url,
                                  upload_once)
from gpuorch.deploy.template import INSTANCE_STORE, StackOptions, build_template, template_text
from gpuorch.settings import Settings
from gpuorch.errors import ConfigurationError
from gpuorch.workflows import load_workflows
from lifecycle.live.refusals import migrate_legacy_refusals

# The default the settings ship with is someone else's: S3 bucket names are global.
SHIPPED_BUCKET = Settings().bucket


class DeployRefused(ConfigurationError, ValueError):
    """The settings or options cannot make a working deployment; nothing was changed."""


@dataclass(frozen=True)
class DeployRequest:
    stack_name: str
    options: StackOptions
    subnet_ids: tuple[str, ...] = ()
    gpu_image: str = ""
    host_image: str = ""
    gpu_image_parameter: str = GPU_IMAGE_PARAMETER
    host_image_parameter: str = HOST_IMAGE_PARAMETER
    release_bucket: str = ""  # empty: gpuorch-deploy-<account>-<region>
    source: Path = CHECKOUT


@dataclass
class DeployReport:
    account: str = ""
    placement: Placement | None = None
    images: dict[str, Image] = field(default_factory=dict)
    release: Release | None = None
    release_bucket: str = ""
    outcome: Outcome | None = None
    pool_states: dict[str, str] = field(default_factory=dict)


def refusals(settings: Settings, options: StackOptions | None = None) -> list[str]:
    """Why these settings (and options) cannot be deployed as they are (empty: they can)."""
    problems = []
    if options is not None and options.models_store == INSTANCE_STORE and not settings.models_mirror and any(
            not model.source.startswith("s3://") for workflow in load_workflows(settings.workflows_dir)
            for model in workflow.models):
        problems.append("--models-store instance-store fetches the model files at every boot: it needs your S3 copy "
                        "of them in the region (GPUORCH_MODELS_MIRROR; docs/DEPLOYMENT.md, \"Model files\"), or "
                        "--models-store volume")
    if settings.bucket == SHIPPED_BUCKET:
        problems.append(f"GPUORCH_BUCKET is the shipped default {SHIPPED_BUCKET!r}: bucket names are global, so "
                        "choose one of your own, e.g. gpuorch-jobs-<account id>")
    if settings.allow_insecure_inputs:
        problems.append("GPUORCH_ALLOW_INSECURE_INPUTS is for the local stack only")
    return problems


def model_bytes(settings: Settings) -> int:
    """The bytes of the model files the deployment's workflows declare (a file two workflows share counted once)."""
    files = {model.name: model.bytes for workflow in load_workflows(settings.workflows_dir)
             for model in workflow.models}
    return sum(files.values())


def instance_store_problems(ec2, instance_types: Sequence[str], needed_bytes: int) -> list[str]:
    """Why the model files cannot live on these GPU instance types' instance store (empty: they can)."""
    problems = []
    for kind in ec2.describe_instance_types(InstanceTypes=sorted(set(instance_types)))["InstanceTypes"]:
        gb = (kind.get("InstanceStorageInfo") or {}).get("TotalSizeInGB", 0)
        if gb * 1000 ** 3 < needed_bytes:
            problems.append(f"{kind['InstanceType']} has {gb} GB of instance store, and the workflows' model files "
                            f"take {needed_bytes / 1000 ** 3:.1f} GB: deploy with --models-store volume")
    return problems


def stack_parameters(placement: Placement, images: dict[str, Image], release: Release,
                     release_bucket: str) -> dict[str, str]:
    return {
        "VpcId": placement.vpc_id,
        "LoadBalancerSubnets": ",".join(s.subnet_id for s in placement.load_balancer_subnets),
        "HostSubnet": placement.host_subnet.subnet_id,
        "GpuSubnet": placement.gpu_subnet.subnet_id,
        "HostImage": images["host"].image_id,
        "GpuImage": images["gpu"].image_id,
        "ReleaseBucket": release_bucket,
        "ReleaseKey": release.key,
        "ReleaseVersion": release.version,
    }


def deploy(settings: Settings, request: DeployRequest, *, say: Callable[[str], None] = lambda line: None,
           apply: Callable[..., Outcome] = apply_stack) -> DeployReport:
    """Create or update the stack; raises DeployRefused (nothing changed) or the failure of the step that failed."""
    problems = refusals(settings, request.options)
    if problems:
        raise DeployRefused("; ".join(problems))
    aws = AwsClients(settings)
    report = DeployReport(account=aws.sts.get_caller_identity()["Account"])
    region = settings.region
    say(f"Deploying stack {request.stack_name} to account {report.account}, {region}")

    types = [settings.gpu_instance_type, request.options.host_instance_type, *settings.fallback_instance_types]
    report.placement = choose_placement(find_subnets(aws.ec2, request.subnet_ids), offered_zones(aws.ec2, types),
                                        gpu_type=settings.gpu_instance_type,
                                        host_type=request.options.host_instance_type,
                                        fallback_types=settings.fallback_instance_types)
    if request.options.models_store == INSTANCE_STORE:
        problems = instance_store_problems(aws.ec2, [settings.gpu_instance_type, *settings.fallback_instance_types],
                                           model_bytes(settings))
        if problems:
            raise DeployRefused("; ".join(problems))
    say(f"  network: {report.placement.describe()}")
    for note in report.placement.notes:
        say(f"  note: {note}")
    report.images = {
        "gpu": resolve_image(aws.ssm, aws.ec2, image_id=request.gpu_image, parameter=request.gpu_image_parameter,
                             volume_gb=request.options.gpu_volume_gb),
        "host": resolve_image(aws.ssm, aws.ec2, image_id=request.host_image, parameter=request.host_image_parameter),
    }
    say(f"  GPU image: {report.images['gpu'].describe()}")
    say(f"  host image: {report.images['host'].describe()}")

    template = template_text(build_template(settings, request.options, render_all(settings, report.account)))
    report.release = make_release(request.source)
    report.release_bucket = request.release_bucket or f"gpuorch-deploy-{report.account}-{region}"
    if ensure_release_bucket(aws.s3, report.release_bucket, region):
        say(f"  made the release bucket {report.release_bucket}")
    uploaded = upload_once(aws.s3, report.release_bucket, report.release.key, report.release.archive)
    say(f"  release {report.release.version}: s3://{report.release_bucket}/{report.release.key}"
        f"{'' if uploaded else ' (there already)'}")
    template_key = f"templates/{request.stack_name}-{hashlib.sha256(template.encode()).hexdigest()[:16]}.json"
    upload_once(aws.s3, report.release_bucket, template_key, template.encode())

    parameters = stack_parameters(report.placement, report.images, report.release, report.release_bucket)
    say(f"  stack {request.stack_name}: applying (the GPU instances' first boot sets them up: allow an hour or more)")
    report.outcome = apply(aws.cloudformation, request.stack_name,
                           template_url(report.release_bucket, template_key, region), parameters,
                           on_status=lambda status: say(f"    {status}"))
    say(f"  stack {request.stack_name}: {report.outcome.action} ({report.outcome.status})")
    # An earlier release's refusals keep holding their instances, under the keys this release reads.
    moved = migrate_legacy_refusals(aws.dynamodb, settings.control_table, aws.instance_arn)
    if moved:
        say(f"  moved {moved} refusal(s) of an earlier release to their instance's key")
    pool = [i for i in report.outcome.outputs.get("GpuInstanceIds", "").split(",") if i]
    report.pool_states = stop_pool(aws.ec2, pool)
    return report


def next_steps(settings: Settings, request: DeployRequest, report: DeployReport) -> list[str]:
    """What the operator reads at the end: where the API and Flower are, and what is left to do by hand."""
    outputs = report.outcome.outputs if report.outcome else {}
    host = outputs.get("HostInstanceId", "<host instance id>")
    region = settings.region
    lines = [f"API:    {outputs.get('ApiUrl', request.options.api_url)}"]
    if not request.options.hosted_zone_id:
        lines.append(f"        point {request.options.domain} at {outputs.get('LoadBalancerDnsName', '?')} "
                     "(a CNAME at your DNS provider)")
    lines += [
        f"Flower: http://localhost:{settings.flower_port} once this runs on your workstation (operators only: "
        "Session Manager, no open port):",
        f"          aws ssm start-session --region {region} --target {host} "
        "--document-name AWS-StartPortForwardingSession "
        f"--parameters portNumber={settings.flower_port},localPortNumber={settings.flower_port}",
        f"        its login: aws ssm start-session --region {region} --target {host}, then "
        "sudo cat /etc/gpuorch/flower-login",
        f"GPU pool: {', '.join(f'{i} ({s})' for i, s in report.pool_states.items()) or '-'}; "
        "the control worker starts it when jobs arrive",
        "Next:",
        "  1. API keys, with these settings loaded (they name the key table): one per client,",
        "       gpuorch keys create --owner NAME            (an operator's: --operator)",
        "     clients send it as 'Authorization: Bearer <key>' (docs/DEPLOYMENT.md: Clients)",
        f"  2. GPU quota: 'Running On-Demand G and VT instances' in {region} must allow 8 vCPUs or more",
        f"  3. a first job: gpuorch submit camera-angle ... --wait, with GPUORCH_API_URL={request.options.api_url}",
    ]
    return lines
