"""`gpuorch deploy` against moto's CloudFormation over HTTP: the stack made from an empty account, what it made (the
same queues and tables `gpuorch provision` makes, the pool the lifecycle finds, stopped), a second run over it, and
the checks that refuse a zone without the GPU type, a missing image or a bucket name that is not one's own."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import uuid

import boto3
import pytest
from click.testing import CliRunner

from gpuorch.aws.clients import AwsClients
from gpuorch.cli.main import main
from gpuorch.deploy.deployment import instance_store_problems
from gpuorch.deploy.images import ImageError, image_problems, resolve_image
from gpuorch.deploy.network import PlacementError, Subnet, choose_placement
from gpuorch.deploy.policies import render_all, role_documents
from gpuorch.deploy.source import make_release
from gpuorch.provision import Provisioner
from gpuorch.settings import Settings, settings_env
from lifecycle.live.pool import InstancePool
from tests.conftest import unique_settings

DOMAIN = "api.example.com"
# moto's CloudFormation skips the GPU pool's wait condition (what the first boot reports to): cfn-lint checks it.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..CloudFormation..WaitCondition")


def client(endpoint: str, service: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def account(moto_endpoint):
    """What an operator brings: a certificate for the API's name, and an x86_64 image for the instances (moto keeps
    AWS's public SSM image parameters out of reach, so the images are given)."""
    certificate = client(moto_endpoint, "acm").request_certificate(DomainName=DOMAIN)["CertificateArn"]
    images = client(moto_endpoint, "ec2").describe_images(
        Filters=[{"Name": "architecture", "Values": ["x86_64"]}, {"Name": "state", "Values": ["available"]}])["Images"]
    return {"certificate": certificate, "image": images[0]["ImageId"]}


def run_deploy(settings: Settings, account: dict, *extra: str, stack: str):
    args = ["deploy", "--domain", DOMAIN, "--certificate-arn", account["certificate"], "--stack-name", stack,
            "--gpu-image", account["image"], "--host-image", account["image"],
            "--release-bucket", f"release-{stack}", *extra]
    return CliRunner().invoke(main, args, env=settings_env(settings))


def test_deploy_builds_the_stack_from_an_empty_account_and_leaves_the_gpu_stopped(moto_endpoint, account):
    settings = unique_settings(moto_endpoint, max_receive_count=4)
    stack = f"gpuorch-{uuid.uuid4().hex[:8]}"
    answer = run_deploy(settings, account, stack=stack)
    assert answer.exit_code == 0, answer.output
    assert "CREATE_COMPLETE" in answer.output and f"https://{DOMAIN}" in answer.output
    assert "AWS-StartPortForwardingSession" in answer.output and "gpuorch keys create" in answer.output

    cloudformation = client(moto_endpoint, "cloudformation")
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
    # The lifecycle finds the pool by its tag; deploy stopped what the (unsimulated) first boot left running.
    pool = InstancePool(AwsClients(settings).ec2, settings.gpu_pool)
    instances = pool.describe()
    assert sorted(i.instance_id for i in instances) == sorted(outputs["GpuInstanceIds"].split(","))
    assert len(instances) == 2  # the default pool: two on-demand instances, one GPU for a backlog's second start
    assert {i.state for i in instances} <= {"stopping", "stopped"}
    assert all(i.instance_type == settings.gpu_instance_type for i in instances)

    # The stack made what `gpuorch provision` makes: provisioning over it finds the queues as they must be, and the
    # tables with their keys and indexes (moto's CloudFormation leaves out a table's TimeToLiveSpecification, which
    # provision then adds; the template's is checked in test_template.py).
    changes = {c.resource: c for c in Provisioner(AwsClients(settings), settings).run()}
    for queue in (settings.gpu_queue, settings.gpu_dead_letter_queue, settings.control_queue):
        assert changes[f"sqs queue {queue}"].action == "unchanged"
    for table in (settings.job_table, settings.result_table, settings.control_table, settings.key_table):
        change = changes[f"dynamodb table {table}"]
        assert change.action == "unchanged" or change.detail.startswith("ttl on"), change

    # Each role holds the rendered documents of its kind of instance (Session Manager's policy beside them is in
    # the template, test_template.py: moto's CloudFormation does not attach a role's ManagedPolicyArns).
    iam = client(moto_endpoint, "iam")
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                 for r in cloudformation.list_stack_resources(StackName=stack)["StackResourceSummaries"]}
    documents = render_all(settings, "123456789012")
    for role, logical in (("host", "HostRole"), ("gpu", "GpuRole")):
        attached = iam.list_attached_role_policies(RoleName=resources[logical])["AttachedPolicies"]
        held = [iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId="v1")["PolicyVersion"]["Document"]
                for p in attached]
        assert sorted(map(json.dumps, held)) == sorted(map(json.dumps, role_documents(role, documents).values()))

    # The release the instances install is in the release bucket, under the version they are told.
    release = make_release()
    s3 = client(moto_endpoint, "s3")
    assert s3.head_object(Bucket=f"release-{stack}", Key=release.key)["ContentLength"] == len(release.archive)

    # Deploying again over it: an update (or nothing to do), never a second stack.
    again = run_deploy(settings, account, stack=stack)
    assert again.exit_code == 0, again.output
    assert "there already" in again.output
    assert len([s for s in cloudformation.describe_stacks()["Stacks"] if s["StackName"] == stack]) == 1


def test_a_subnet_in_a_zone_without_the_gpu_type_is_refused_naming_the_zones(moto_endpoint, account):
    ec2 = client(moto_endpoint, "ec2")
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]}
    offered = {o["Location"] for o in ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["g6e.2xlarge"]}])[
        "InstanceTypeOfferings"]}
    lacking = sorted(zone for zone in subnets if zone not in offered)
    assert lacking, "moto's region lists a zone without g6e.2xlarge"
    other = next(zone for zone in sorted(subnets) if zone not in offered and zone != lacking[0]) \
        if len(lacking) > 1 else None
    chosen = [subnets[lacking[0]]] + ([subnets[other]] if other else [])
    if len(chosen) < 2:
        pytest.skip("moto offers g6e.2xlarge in all but one zone: the single-zone refusal is tested below")
    settings = unique_settings(moto_endpoint)
    answer = run_deploy(settings, account, "--subnets", ",".join(chosen), stack=f"gpuorch-{uuid.uuid4().hex[:8]}")
    assert answer.exit_code == 2 and "g6e.2xlarge is offered in" in answer.output


@pytest.mark.parametrize("subnets,offered,expected", [
    # The first zone offering the GPU type takes the pool and the host; the load balancer one subnet per zone.
    ([("s-a", "z-a"), ("s-b", "z-b")], {"g": {"z-a", "z-b"}, "t": {"z-a", "z-b"}}, ("s-a", "s-a", ("s-a", "s-b"))),
    ([("s-a", "z-a"), ("s-b", "z-b")], {"g": {"z-b"}, "t": {"z-a", "z-b"}}, ("s-b", "s-b", ("s-a", "s-b"))),
    # The host's type missing in the GPU's zone: the host goes where it is offered.
    ([("s-a", "z-a"), ("s-b", "z-b")], {"g": {"z-b"}, "t": {"z-a"}}, ("s-b", "s-a", ("s-a", "s-b"))),
    ([("s-a2", "z-a"), ("s-a", "z-a"), ("s-b", "z-b")], {"g": {"z-a"}, "t": {"z-a"}}, ("s-a", "s-a", ("s-a", "s-b"))),
])
def test_placement(subnets, offered, expected):
    placement = choose_placement([Subnet(i, "vpc-1", z, True) for i, z in subnets], offered, gpu_type="g",
                                 host_type="t")
    assert (placement.gpu_subnet.subnet_id, placement.host_subnet.subnet_id,
            tuple(s.subnet_id for s in placement.load_balancer_subnets)) == expected


@pytest.mark.parametrize("subnets,offered,message", [
    ([("s-a", "z-a"), ("s-b", "z-b")], {"g": {"z-c"}, "t": {"z-a"}}, "g is offered in z-c; none of the subnets"),
    ([("s-a", "z-a"), ("s-b", "z-b")], {"g": set(), "t": {"z-a"}}, "g is offered in no zone of this region"),
    ([("s-a", "z-a"), ("s-a2", "z-a")], {"g": {"z-a"}, "t": {"z-a"}}, "two availability zones"),
    ([], {}, "no subnets"),
])
def test_placements_that_cannot_work_are_refused(subnets, offered, message):
    with pytest.raises(PlacementError, match=message):
        choose_placement([Subnet(i, "vpc-1", z, True) for i, z in subnets], offered, gpu_type="g", host_type="t")


def test_placement_notes_fallback_types_missing_in_the_zone_and_private_subnets():
    placement = choose_placement([Subnet("s-a", "vpc-1", "z-a", False), Subnet("s-b", "vpc-1", "z-b", True)],
                                 {"g": {"z-a"}, "t": {"z-a"}, "f": {"z-b"}}, gpu_type="g", host_type="t",
                                 fallback_types=("f",))
    assert any("fallback type f" in note for note in placement.notes)
    assert any("NAT gateway" in note for note in placement.notes)


@pytest.mark.parametrize("image,problem", [
    (None, "does not exist"),
    ({"State": "pending", "Architecture": "x86_64"}, "is pending, not available"),
    ({"State": "available", "Architecture": "arm64"}, "built for arm64"),
    ({"State": "available", "Architecture": "x86_64", "RootDeviceName": "/dev/sda1",
      "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 100}}]}, "cannot be smaller"),
])
def test_an_image_that_cannot_boot_the_instances_is_refused(image, problem):
    assert any(problem in p for p in image_problems(image, "ami-0123", volume_gb=75))
    assert image_problems({"State": "available", "Architecture": "x86_64"}, "ami-0123", volume_gb=75) == []


def test_models_on_the_instance_store_need_an_s3_copy_and_types_whose_store_holds_them(moto_endpoint, account):
    settings = unique_settings(moto_endpoint)
    answer = run_deploy(settings, account, "--models-store", "instance-store", stack=f"gpuorch-{uuid.uuid4().hex[:8]}")
    assert answer.exit_code == 2 and "GPUORCH_MODELS_MIRROR" in answer.output, answer.output
    ec2 = client(moto_endpoint, "ec2")
    assert instance_store_problems(ec2, ["g6e.2xlarge", "g6e.xlarge"], 34 * 1000 ** 3) == []
    # 300 GB of models: the g6e.2xlarge's 450 GB holds them, the g6e.xlarge's 250 GB does not, a t3 has none.
    problems = instance_store_problems(ec2, ["g6e.2xlarge", "g6e.xlarge", "t3.small"], 300 * 1000 ** 3)
    assert sorted(p.split(" ")[0] for p in problems) == ["g6e.xlarge", "t3.small"]
    assert all("--models-store volume" in p for p in problems)


def test_images_are_resolved_from_their_parameter_and_an_empty_or_missing_one_is_refused(moto_endpoint, account):
    ssm, ec2 = client(moto_endpoint, "ssm"), client(moto_endpoint, "ec2")
    name = f"/test/{uuid.uuid4().hex[:8]}/ami-id"
    ssm.put_parameter(Name=name, Value=account["image"], Type="String")
    assert resolve_image(ssm, ec2, parameter=name).image_id == account["image"]
    ssm.put_parameter(Name=name, Value=" ", Type="String", Overwrite=True)
    with pytest.raises(ImageError, match="not an image id"):
        resolve_image(ssm, ec2, parameter=name)
    with pytest.raises(ImageError, match="no SSM parameter"):
        resolve_image(ssm, ec2, parameter=f"{name}-missing")
    with pytest.raises(ImageError, match="does not exist"):
        resolve_image(ssm, ec2, image_id="ami-0000000000000dead")


def test_the_shipped_bucket_name_is_refused_before_anything_changes(moto_endpoint, account):
    settings = dataclasses.replace(unique_settings(moto_endpoint), bucket=Settings().bucket)
    answer = run_deploy(settings, account, stack=f"gpuorch-{uuid.uuid4().hex[:8]}")
    assert answer.exit_code == 2 and "GPUORCH_BUCKET is the shipped default" in answer.output


def test_the_release_archive_is_reproducible_root_owned_and_holds_only_the_source():
    first, second = make_release(), make_release()
    assert first == second and first.key == f"releases/gpuorch-{first.version}.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(first.archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {m.uid for m in members.values()} == {0} and {m.uname for m in members.values()} == {"root"}
    assert members["configs/deploy/bootstrap.sh"].mode == 0o755 and "Procfile" in members
    assert not [name for name in members if name.startswith((".venv/", "build/", ".git/")) or "__pycache__" in name]
