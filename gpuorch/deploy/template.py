"""The CloudFormation template of one gpuorch deployment, built from the settings and the rendered IAM documents.

One stack holds everything `docs/DEPLOYMENT.md` used to make by hand: the queues, tables and bucket (the specs
`gpuorch provision` uses), an instance role and profile for the always-on host and for the GPU pool (the documents
of configs/deploy/iam, plus Session Manager for an operator's way in), security groups that let in nothing but the
load balancer's HTTPS, an internet-facing load balancer with a certificate in front of the API, the always-on host,
and the GPU instances, which set themselves up at first boot, report to a wait condition and stop.

What differs per account (network, images, the release archive) comes in as parameters; `gpuorch deploy` resolves
and checks them (gpuorch.deploy.network, gpuorch.deploy.images).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gpuorch.deploy.policies import ROLE_POLICIES, role_documents
from gpuorch.deploy.userdata import API_PORT, GPU, HOST, env_file, environment, user_data
from gpuorch.provision import CONTROL_VISIBILITY_TIMEOUT, expiry_rules, queue_attributes, table_specs, index_spec
from gpuorch.settings import Settings
from lifecycle.live.pool import POOL_TAG

SSM_MANAGED_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# TLS 1.3 and 1.2 with forward secrecy only: the load balancer policy AWS recommends.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# The GPU instance's root volume (the Deep Learning Base AMIs' device name): ComfyUI, PyTorch and ~34 GB of models.
GPU_ROOT_DEVICE = "/dev/sda1"
HOST_ROOT_DEVICE = "/dev/sda1"
# How long the GPU instances' first boot may take: ComfyUI, PyTorch and the model files from their source.
GPU_SETUP_TIMEOUT_S = 2 * 3600


INSTANCE_STORE, VOLUME = "instance-store", "volume"
# The GPU instances' gp3 volume (GB, MiB/s) by model store. On the instance store the volume holds the system, ComfyUI
# and PyTorch at gp3's free baseline (gpuorch deploy refuses one smaller than the image's root snapshot); holding the
# ~31 GiB of models too, it is provisioned at 500 MiB/s, which every cold start reads them at.
VOLUMES = {INSTANCE_STORE: (75, 125), VOLUME: (150, 500)}
# The warm-up reads the models from the instance store's NVMe (and mostly the page cache the fetch left behind).
INSTANCE_STORE_READ_MIB_S = 1000


@dataclass(frozen=True)
class StackOptions:
    """What the operator chooses beyond the settings (gpuorch deploy's options)."""

    domain: str  # the API's DNS name: https://<domain>
    certificate_arn: str = ""  # an ACM certificate for it; empty: the stack requests one (needs hosted_zone_id)
    hosted_zone_id: str = ""  # a Route 53 zone of the domain: validates the certificate and points the name at it
    client_cidr: str = "0.0.0.0/0"  # who may reach the API
    host_instance_type: str = "t3.small"
    # Where the GPU instances keep the model files (GPUORCH_MODELS_STORE): fetched from S3 onto the instance store at
    # every boot, while ComfyUI starts, or kept on a volume provisioned to read them fast (VOLUMES gives its size).
    models_store: str = INSTANCE_STORE
    gpu_volume_gb: int = VOLUMES[INSTANCE_STORE][0]
    gpu_volume_mib_s: int = VOLUMES[INSTANCE_STORE][1]  # gp3 throughput; 125 is the baseline, paid for above it
    # The pool: two on-demand instances let a backlog start a second GPU (GPUORCH_MAX_INSTANCES follows the pool).
    on_demand_instances: int = 2
    spot_instances: int = 0  # persistent spot instances besides, started first while spot is cheap

    def __post_init__(self) -> None:
        if not re.fullmatch(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", self.domain or ""):
            raise ValueError(f"the API's domain must be a DNS name such as api.example.com, not {self.domain!r}")
        if not (self.certificate_arn or self.hosted_zone_id):
            raise ValueError("HTTPS needs a certificate: give its ARN (ACM, for the domain), or the Route 53 hosted "
                             "zone of the domain so the stack requests and validates one")
        if not 125 <= self.gpu_volume_mib_s <= 1000:
            raise ValueError("a gp3 volume's throughput is 125 to 1000 MiB/s")
        if self.models_store not in VOLUMES:
            raise ValueError(f"the model store is one of {', '.join(VOLUMES)}, not {self.models_store!r}")
        if self.on_demand_instances < 0 or self.spot_instances < 0 or self.on_demand_instances + self.spot_instances < 1:
            raise ValueError("the GPU pool needs at least one instance")

    @property
    def pool_slots(self) -> int:
        """GPUs that may run at once: a spot instance and an on-demand one share a slot (the fallback)."""
        return max(self.on_demand_instances, self.spot_instances)

    @property
    def models_read_mib_s(self) -> int:
        """How fast the GPU worker's warm-up reads the model files (GPUORCH_MODELS_READ_MIB_S)."""
        return INSTANCE_STORE_READ_MIB_S if self.models_store == INSTANCE_STORE else self.gpu_volume_mib_s

    def decided(self, settings: Settings) -> dict[str, str]:
        """The settings the options decide on every instance. GPUORCH_MAX_INSTANCES follows the pool unless the
        settings chose another."""
        values = {"GPUORCH_MODELS_STORE": self.models_store, "GPUORCH_MODELS_READ_MIB_S": str(self.models_read_mib_s)}
        if settings.max_instances == Settings().max_instances:
            values["GPUORCH_MAX_INSTANCES"] = str(self.pool_slots)
        return values

    @property
    def api_url(self) -> str:
        return f"https://{self.domain}"


def _logical(name: str) -> str:
    """A logical id from a document's file name: control-monitoring-policy.json -> ControlMonitoringPolicy."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name.removesuffix(".json")) if part)


def _tags(name: str, **more: str) -> list[dict[str, str]]:
    return [{"Key": "Name", "Value": name}, *({"Key": k, "Value": v} for k, v in more.items())]


def _queues(settings: Settings) -> dict[str, Any]:
    def queue(name: str, attributes: dict[str, str], redrive: dict | None = None) -> dict[str, Any]:
        properties: dict[str, Any] = {"QueueName": name, "SqsManagedSseEnabled": True}
        properties.update({k: int(v) for k, v in attributes.items() if k != "RedrivePolicy"})
        if redrive:
            properties["RedrivePolicy"] = redrive
        return {"Type": "AWS::SQS::Queue", "Properties": properties}

    gpu = queue_attributes(settings, dlq_arn=None, visibility=settings.visibility_timeout)
    control = queue_attributes(settings, dlq_arn=None, visibility=CONTROL_VISIBILITY_TIMEOUT)
    redrive = {"deadLetterTargetArn": {"Fn::GetAtt": ["GpuDeadLetterQueue", "Arn"]},
               "maxReceiveCount": settings.max_receive_count}
    return {
        "GpuDeadLetterQueue": queue(settings.gpu_dead_letter_queue, gpu),
        "GpuQueue": queue(settings.gpu_queue, gpu, redrive),
        "ControlQueue": queue(settings.control_queue, control),
    }


def _tables(settings: Settings) -> dict[str, Any]:
    resources = {}
    for logical, spec in zip(("JobTable", "ResultTable", "ControlTable", "KeyTable"), table_specs(settings),
                             strict=True):
        keys = [{"AttributeName": spec.key, "KeyType": "HASH"}]
        if spec.sort_key:
            keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
        properties: dict[str, Any] = {
            "TableName": spec.name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": keys,
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": t} for a, t in spec.attributes.items()],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        }
        if spec.indexes:
            properties["GlobalSecondaryIndexes"] = [index_spec(index) for index in spec.indexes]
        if spec.ttl_attribute:
            properties["TimeToLiveSpecification"] = {"AttributeName": spec.ttl_attribute, "Enabled": True}
        # Job records and API keys outlive a deleted stack: deleting them is a choice, not a side effect.
        resources[logical] = {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain",
                              "UpdateReplacePolicy": "Retain", "Properties": properties}
    return resources


def _bucket(settings: Settings) -> dict[str, Any]:
    rules = [{"Id": rule["ID"], "Status": rule["Status"], "Prefix": rule["Filter"]["Prefix"],
              "ExpirationInDays": rule["Expiration"]["Days"]} for rule in expiry_rules(settings)]
    return {"JobBucket": {
        "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketName": settings.bucket,
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                                               "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LifecycleConfiguration": {"Rules": rules},
        },
    }}


def _roles(documents: dict[str, Any]) -> dict[str, Any]:
    """A managed policy per document (each under IAM's 6,144 characters; together past a role's inline limit),
    the role of each kind of instance, its instance profile, and reading the release archive."""
    resources: dict[str, Any] = {}
    for role, prefix in ((HOST, "Host"), (GPU, "Gpu")):
        for name, document in role_documents("host" if role == HOST else "gpu", documents).items():
            # Each document is one role's, so its name is unique in the stack.
            resources[_logical(name)] = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {
                "Description": f"gpuorch {role}: configs/deploy/iam/{name}", "PolicyDocument": document,
                "Roles": [{"Ref": f"{prefix}Role"}]}}
        resources[f"{prefix}Role"] = {"Type": "AWS::IAM::Role", "Properties": {
            "Description": f"gpuorch {role} instances",
            "AssumeRolePolicyDocument": documents["ec2-trust-policy.json"],
            # Session Manager: the way in for an operator, with no key pair and no inbound port.
            "ManagedPolicyArns": [SSM_MANAGED_POLICY],
            "Policies": [{"PolicyName": "read-gpuorch-release", "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Sid": "ReadRelease", "Effect": "Allow", "Action": "s3:GetObject",
                               "Resource": {"Fn::Sub": "arn:aws:s3:::${ReleaseBucket}/releases/*"}}]}}],
        }}
        resources[f"{prefix}InstanceProfile"] = {"Type": "AWS::IAM::InstanceProfile",
                                                 "Properties": {"Roles": [{"Ref": f"{prefix}Role"}]}}
    return resources


def _network(options: StackOptions) -> dict[str, Any]:
    def ingress(port: int, **source: Any) -> dict[str, Any]:
        return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **source}

    return {
        "LoadBalancerSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "gpuorch API load balancer: HTTPS (and HTTP, redirected) from the API clients",
            "VpcId": {"Ref": "VpcId"},
            "SecurityGroupIngress": [ingress(443, CidrIp=options.client_cidr, Description="API clients"),
                                     ingress(80, CidrIp=options.client_cidr, Description="redirected to HTTPS")],
        }},
        "HostSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "gpuorch always-on host: the API port from the load balancer only",
            "VpcId": {"Ref": "VpcId"},
            "SecurityGroupIngress": [ingress(API_PORT, SourceSecurityGroupId={"Ref": "LoadBalancerSecurityGroup"},
                                             Description="the load balancer")],
        }},
        "GpuSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "gpuorch GPU instances: no inbound (the worker only calls out)",
            "VpcId": {"Ref": "VpcId"},
        }},
    }


def _front_door(options: StackOptions) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    certificate: Any = options.certificate_arn
    if not certificate:
        resources["ApiCertificate"] = {"Type": "AWS::CertificateManager::Certificate", "Properties": {
            "DomainName": options.domain, "ValidationMethod": "DNS",
            "DomainValidationOptions": [{"DomainName": options.domain, "HostedZoneId": options.hosted_zone_id}],
        }}
        certificate = {"Ref": "ApiCertificate"}
    resources["LoadBalancer"] = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
        "Type": "application", "Scheme": "internet-facing",
        "Subnets": {"Ref": "LoadBalancerSubnets"},
        "SecurityGroups": [{"Ref": "LoadBalancerSecurityGroup"}],
        "LoadBalancerAttributes": [
            # An upload of the largest request over a slow link, and a long poll of a job, stay open this long.
            {"Key": "idle_timeout.timeout_seconds", "Value": "120"},
            {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
        ],
    }}
    resources["ApiTargetGroup"] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
        "VpcId": {"Ref": "VpcId"}, "Protocol": "HTTP", "Port": API_PORT, "TargetType": "instance",
        "Targets": [{"Id": {"Ref": "HostInstance"}, "Port": API_PORT}],
        # /health answers 503 naming the component when SQS, DynamoDB or S3 cannot be reached.
        "HealthCheckProtocol": "HTTP", "HealthCheckPath": "/health", "Matcher": {"HttpCode": "200"},
        "HealthCheckIntervalSeconds": 30, "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 3,
        "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
    }}
    resources["HttpsListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "LoadBalancerArn": {"Ref": "LoadBalancer"}, "Protocol": "HTTPS", "Port": 443, "SslPolicy": TLS_POLICY,
        "Certificates": [{"CertificateArn": certificate}],
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "ApiTargetGroup"}}],
    }}
    resources["HttpListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "LoadBalancerArn": {"Ref": "LoadBalancer"}, "Protocol": "HTTP", "Port": 80,
        "DefaultActions": [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443",
                                                                    "StatusCode": "HTTP_301"}}],
    }}
    if options.hosted_zone_id:
        resources["ApiRecord"] = {"Type": "AWS::Route53::RecordSet", "Properties": {
            "HostedZoneId": options.hosted_zone_id, "Name": options.domain, "Type": "A",
            "AliasTarget": {"DNSName": {"Fn::GetAtt": ["LoadBalancer", "DNSName"]},
                            "HostedZoneId": {"Fn::GetAtt": ["LoadBalancer", "CanonicalHostedZoneID"]}},
        }}
    return resources


def _release_parts() -> dict[str, Any]:
    return {"release_bucket": {"Ref": "ReleaseBucket"}, "release_key": {"Ref": "ReleaseKey"},
            "release_version": {"Ref": "ReleaseVersion"}}


def gpu_instance_names(options: StackOptions) -> list[str]:
    """The logical ids of the GPU pool's instances."""
    # The first spot instance keeps the name it had when a pool held at most one: an update does not replace it.
    return [f"GpuInstance{n}" for n in range(1, options.on_demand_instances + 1)] + [
        "GpuSpotInstance" if n == 1 else f"GpuSpotInstance{n}" for n in range(1, options.spot_instances + 1)]


def _instances(settings: Settings, options: StackOptions) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    gpu_names = gpu_instance_names(options)
    gpu_env = env_file(environment(settings, GPU, api_url=options.api_url, decided=options.decided(settings)))
    host_env = env_file(environment(settings, HOST, api_url=options.api_url, decided=options.decided(settings)))
    # IMDSv2 only: the GPU worker asks it for its instance id; the host's containers (a hop further) may reach it.
    metadata = {"HttpEndpoint": "enabled", "HttpTokens": "required"}
    # In the launch templates: an instance's own block device mappings cannot set a gp3 volume's throughput.
    volume: dict[str, Any] = {"VolumeSize": options.gpu_volume_gb, "VolumeType": "gp3",
                              "Throughput": options.gpu_volume_mib_s, "Encrypted": True, "DeleteOnTermination": True}
    if settings.ebs_kms_key:
        volume["KmsKeyId"] = settings.ebs_kms_key
    gpu_data = {"MetadataOptions": {**metadata, "HttpPutResponseHopLimit": 1},
                "BlockDeviceMappings": [{"DeviceName": GPU_ROOT_DEVICE, "Ebs": volume}]}
    resources["HostLaunchTemplate"] = {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {
        "MetadataOptions": {**metadata, "HttpPutResponseHopLimit": 2},
        "BlockDeviceMappings": [{"DeviceName": HOST_ROOT_DEVICE, "Ebs": {
            "VolumeSize": 20, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}]}}}
    resources["GpuLaunchTemplate"] = {"Type": "AWS::EC2::LaunchTemplate",
                                      "Properties": {"LaunchTemplateData": gpu_data}}
    if options.spot_instances:
        # Persistent and stopped on interruption: EC2 stops and starts it like an on-demand instance.
        resources["GpuSpotLaunchTemplate"] = {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {
            **gpu_data, "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {
                "SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"}}}}}
    for logical in gpu_names:
        template = "GpuSpotLaunchTemplate" if logical.startswith("GpuSpotInstance") else "GpuLaunchTemplate"
        resources[logical] = {"Type": "AWS::EC2::Instance", "Properties": {
            "ImageId": {"Ref": "GpuImage"}, "InstanceType": settings.gpu_instance_type,
            "SubnetId": {"Ref": "GpuSubnet"}, "SecurityGroupIds": [{"Ref": "GpuSecurityGroup"}],
            "IamInstanceProfile": {"Ref": "GpuInstanceProfile"},
            "LaunchTemplate": {"LaunchTemplateId": {"Ref": template},
                               "Version": {"Fn::GetAtt": [template, "LatestVersionNumber"]}},
            "InstanceInitiatedShutdownBehavior": "stop",  # its first boot ends with a power-off: stopped, not gone
            "Tags": _tags(f"gpuorch-gpu-{logical.removeprefix('Gpu').lower()}", **{POOL_TAG: settings.gpu_pool}),
            "UserData": {"Fn::Base64": {"Fn::Join": ["", user_data(
                GPU, gpu_env, region=settings.region, wait_url={"Ref": "GpuSetupHandle"}, **_release_parts())]}},
        }}
    resources["GpuSetupHandle"] = {"Type": "AWS::CloudFormation::WaitConditionHandle"}
    resources["GpuSetup"] = {"Type": "AWS::CloudFormation::WaitCondition", "DependsOn": gpu_names, "Properties": {
        "Handle": {"Ref": "GpuSetupHandle"}, "Timeout": str(GPU_SETUP_TIMEOUT_S), "Count": len(gpu_names)}}
    resources["HostInstance"] = {
        "Type": "AWS::EC2::Instance",
        # The control worker starts and stops the pool: it must not see an instance that is still setting up. Its
        # processes read the control table's index of heartbeats and refusals: on an update that adds it, they start
        # once it is built.
        "DependsOn": ["GpuSetup", "ControlTable"],
        "Properties": {
            "ImageId": {"Ref": "HostImage"}, "InstanceType": options.host_instance_type,
            "SubnetId": {"Ref": "HostSubnet"}, "SecurityGroupIds": [{"Ref": "HostSecurityGroup"}],
            "IamInstanceProfile": {"Ref": "HostInstanceProfile"},
            "LaunchTemplate": {"LaunchTemplateId": {"Ref": "HostLaunchTemplate"},
                               "Version": {"Fn::GetAtt": ["HostLaunchTemplate", "LatestVersionNumber"]}},
            "Tags": _tags("gpuorch-host"),  # no pool tag: the lifecycle must never stop it
            "UserData": {"Fn::Base64": {"Fn::Join": ["", user_data(
                HOST, host_env, region=settings.region, **_release_parts())]}},
        },
    }
    return resources


PARAMETERS = {
    "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "The VPC of every subnet below"},
    "LoadBalancerSubnets": {"Type": "List<AWS::EC2::Subnet::Id>",
                            "Description": "Public subnets of the load balancer, in two availability zones or more"},
    "HostSubnet": {"Type": "AWS::EC2::Subnet::Id", "Description": "The always-on host's subnet (outbound internet)"},
    "GpuSubnet": {"Type": "AWS::EC2::Subnet::Id",
                  "Description": "The GPU instances' subnet, in a zone that offers their instance type"},
    "HostImage": {"Type": "AWS::EC2::Image::Id", "Description": "Ubuntu 22.04 (x86_64) for the always-on host"},
    "GpuImage": {"Type": "AWS::EC2::Image::Id",
                 "Description": "An x86_64 image with the NVIDIA driver (Deep Learning Base OSS, Ubuntu 22.04)"},
    "ReleaseBucket": {"Type": "String", "Description": "Bucket holding the release archive"},
    "ReleaseKey": {"Type": "String", "Description": "Its key (releases/gpuorch-<version>.tar.gz)"},
    "ReleaseVersion": {"Type": "String", "AllowedPattern": "[A-Za-z0-9._+-]+",
                       "Description": "The release's version, as install-release.sh names it"},
}


def build_template(settings: Settings, options: StackOptions, documents: dict[str, Any]) -> dict[str, Any]:
    """The template, as a dict ready for json.dumps; `documents` are render_all's for these settings."""
    missing = {"ec2-trust-policy.json", *ROLE_POLICIES["host"][:1], *ROLE_POLICIES["gpu"][:1]} - set(documents)
    if missing:
        raise ValueError(f"the rendered documents lack {sorted(missing)}")
    resources = {**_queues(settings), **_tables(settings), **_bucket(settings), **_roles(documents),
                 **_network(options), **_front_door(options), **_instances(settings, options)}
    gpu_instances = gpu_instance_names(options)
    outputs = {
        "ApiUrl": {"Description": "The API, over HTTPS", "Value": options.api_url},
        "LoadBalancerDnsName": {"Description": "Point the API's name here (a CNAME or an alias)",
                                "Value": {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}},
        "HostInstanceId": {"Description": "The always-on host (API, control worker, beat, Flower)",
                           "Value": {"Ref": "HostInstance"}},
        "GpuInstanceIds": {"Description": "The GPU pool, stopped until jobs arrive",
                           "Value": {"Fn::Join": [",", [{"Ref": name} for name in gpu_instances]]}},
        "JobBucket": {"Description": "Inputs and results", "Value": {"Ref": "JobBucket"}},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"gpuorch: the API at {options.api_url}, its workers and the GPU pool {settings.gpu_pool!r}",
        "Parameters": PARAMETERS,
        "Resources": resources,
        "Outputs": outputs,
    }


def template_text(template: dict[str, Any]) -> str:
    return json.dumps(template, indent=1, sort_keys=False) + "\n"
