"""`gpuorch deploy`: the whole deployment on AWS, as one CloudFormation stack, from an empty account or over itself."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.deploy.template import INSTANCE_STORE, VOLUME, VOLUMES, StackOptions
from gpuorch.settings import Settings


@click.command()
@click.option("--domain", required=True, metavar="NAME", help="The API's DNS name: clients reach https://NAME.")
@click.option("--hosted-zone-id", default="", metavar="ZONE",
              help="Route 53 hosted zone of the domain: the stack requests and validates a certificate in it and "
                   "points the name at the load balancer.")
@click.option("--certificate-arn", default="", metavar="ARN",
              help="An ACM certificate for the domain instead (then point the name at the load balancer yourself).")
@click.option("--client-cidr", default="0.0.0.0/0", show_default=True, metavar="CIDR",
              help="Addresses allowed to reach the API.")
@click.option("--subnets", default="", metavar="IDS",
              help="Comma-separated subnets of one VPC, in two zones or more.  [default: the default VPC's]")
@click.option("--stack-name", default="gpuorch", show_default=True)
@click.option("--gpu-image", default="", metavar="AMI", help="Image of the GPU instances.  [default: AWS's Deep "
              "Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04), latest]")
@click.option("--host-image", default="", metavar="AMI", help="Image of the always-on host.  [default: Canonical's "
              "Ubuntu 22.04, latest]")
@click.option("--host-instance-type", default="t3.small", show_default=True)
@click.option("--models-store", type=click.Choice(sorted(VOLUMES)), default=None,
              help="Where the GPU instances keep the model files (GPUORCH_MODELS_STORE): fetched from your S3 copy "
                   "(GPUORCH_MODELS_MIRROR) onto the instance store at every boot while ComfyUI starts, or kept on "
                   "the volume.  [default: instance-store with GPUORCH_MODELS_MIRROR or GPUORCH_MODELS_STORE=instance-store, "
                   "else volume]")
@click.option("--volume-gb", type=int, default=None, metavar="GB",
              help=f"GPU instances' gp3 volume: system, ComfyUI, PyTorch, and the models on the volume store.  "
                   f"[default: {VOLUMES[INSTANCE_STORE][0]}; {VOLUMES[VOLUME][0]} with --models-store volume]")
@click.option("--volume-throughput", type=int, default=None, metavar="MIB_S",
              help=f"Its gp3 throughput (125-1000); on the volume store every cold start reads the ~31 GiB of models "
                   f"at this rate.  [default: {VOLUMES[INSTANCE_STORE][1]}; {VOLUMES[VOLUME][1]} with --models-store "
                   f"volume]")
@click.option("--on-demand", "on_demand", default=StackOptions.on_demand_instances, show_default=True,
              help="On-demand GPU instances in the pool: a backlog starts more than one.")
@click.option("--spot", "spot", type=int, is_flag=False, flag_value=-1, default=0, metavar="[N]",
              help="Also N persistent spot instances, started first while spot is cheap; --spot alone: one beside "
                   "each on-demand instance.")
@click.option("--release-bucket", default="", metavar="BUCKET",
              help="Where the release archive and the template go.  [default: gpuorch-deploy-<account>-<region>]")
@click.option("--template-only", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the template for ACCOUNT (--account-id) to FILE and change nothing.")
@click.option("--account-id", default="123456789012", show_default=True, help="With --template-only.")
@click.pass_obj
def deploy(settings: Settings, domain: str, hosted_zone_id: str, certificate_arn: str, client_cidr: str, subnets: str,
           stack_name: str, gpu_image: str, host_image: str, host_instance_type: str, models_store: str,
           volume_gb: int | None, volume_throughput: int | None, on_demand: int, spot: int, release_bucket: str,
           template_only: Path | None, account_id: str) -> None:
    """Create or update gpuorch's CloudFormation stack with the GPUORCH_* settings of this shell (the same settings
    file every host gets): queues, tables, bucket, roles, an HTTPS load balancer in front of the API, the always-on
    host, and the GPU pool, set up at first boot and left stopped. Prints the API's URL, how to reach Flower and
    what is left to do. Needs an administrator's credentials and a checkout of gpuorch (its release is shipped).
    """
    from gpuorch.deploy.deployment import DeployRequest, deploy as run_deploy, next_steps
    from gpuorch.deploy.policies import render_all
    from gpuorch.deploy.stack import StackFailed
    from gpuorch.deploy.template import build_template, template_text
    from gpuorch.errors import ConfigurationError

    # The shell's GPUORCH_MODELS_STORE=instance-store asks for it too; the volume is its default, so it cannot.
    models_store = models_store or (
        INSTANCE_STORE if settings.models_mirror or settings.models_store == INSTANCE_STORE else VOLUME)
    try:
        options = StackOptions(domain=domain, certificate_arn=certificate_arn, hosted_zone_id=hosted_zone_id,
                               client_cidr=client_cidr, host_instance_type=host_instance_type,
                               models_store=models_store,
                               gpu_volume_gb=volume_gb or VOLUMES[models_store][0],
                               gpu_volume_mib_s=volume_throughput or VOLUMES[models_store][1],
                               on_demand_instances=on_demand, spot_instances=on_demand if spot < 0 else spot)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if template_only is not None:
        try:
            document = build_template(settings, options, render_all(settings, account_id))
        except ConfigurationError as exc:
            raise click.UsageError(str(exc)) from None
        template_only.write_text(template_text(document))
        click.echo(f"{template_only}: {len(document['Resources'])} resources")
        return
    request = DeployRequest(stack_name=stack_name, options=options,
                            subnet_ids=tuple(s.strip() for s in subnets.split(",") if s.strip()),
                            gpu_image=gpu_image, host_image=host_image, release_bucket=release_bucket)
    try:
        report = run_deploy(settings, request, say=click.echo)
    except StackFailed as exc:  # before its branch: the stack was tried, and CloudFormation says why it failed
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except ConfigurationError as exc:  # settings, options, images or placement: nothing was changed
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (BotoCoreError, ClientError) as exc:
        click.echo(f"error: AWS refused or did not answer: {exc}", err=True)
        sys.exit(1)
    click.echo("")
    for line in next_steps(settings, request, report):
        click.echo(line)
