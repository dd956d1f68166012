"""The machine images of the stack's instances: resolved from AWS's public SSM parameters (or given), then checked."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from gpuorch.aws.failures import error_code
from gpuorch.errors import ConfigurationError

# AWS's Deep Learning Base AMI with the NVIDIA driver, Ubuntu 22.04 (the driver is what the GPU instance needs).
GPU_IMAGE_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
# Canonical's Ubuntu 22.04 for the always-on host.
HOST_IMAGE_PARAMETER = "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"
ARCHITECTURE = "x86_64"


class ImageError(ConfigurationError, ValueError):
    """No usable image: the parameter is missing or empty, or the image is not there, not ready or not x86_64."""


@dataclass(frozen=True)
class Image:
    image_id: str
    name: str
    source: str  # the SSM parameter it came from, or "given"

    def describe(self) -> str:
        return f"{self.image_id} ({self.name}; {self.source})"


def root_gb(image: dict) -> int:
    """The size of the image's root snapshot (GB), 0 when its block device mappings do not say."""
    for mapping in image.get("BlockDeviceMappings") or []:
        if mapping.get("DeviceName") == image.get("RootDeviceName"):
            return int((mapping.get("Ebs") or {}).get("VolumeSize") or 0)
    return 0


def image_problems(image: dict | None, image_id: str, volume_gb: int = 0) -> list[str]:
    """Why `image` (describe_images's item, None when it found none) cannot boot the stack's instances on a root
    volume of `volume_gb` (0: not checked)."""
    if image is None:
        return [f"{image_id} does not exist in this region (or is not shared with this account)"]
    problems = []
    if image.get("State") != "available":
        problems.append(f"{image_id} is {image.get('State')}, not available")
    if image.get("Architecture") != ARCHITECTURE:
        problems.append(f"{image_id} is built for {image.get('Architecture')}, the instances need {ARCHITECTURE}")
    if volume_gb and root_gb(image) > volume_gb:
        problems.append(f"{image_id}'s root snapshot is {root_gb(image)} GB: the GPU instances' volume (--volume-gb "
                        f"{volume_gb}) cannot be smaller")
    return problems


def resolve_image(ssm, ec2, *, image_id: str = "", parameter: str = "", volume_gb: int = 0) -> Image:
    """`image_id`, or the one `parameter` names now; either way checked with EC2 (and against a root volume of
    `volume_gb`, when given)."""
    source = "given"
    if not image_id:
        try:
            image_id = ssm.get_parameter(Name=parameter)["Parameter"]["Value"].strip()
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                raise ImageError(f"no SSM parameter {parameter} in this region: give an image id instead") from None
            raise
        if not image_id.startswith("ami-"):
            raise ImageError(f"the SSM parameter {parameter} holds {image_id!r}, not an image id")
        source = parameter
    try:
        found = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:
        if error_code(exc) not in {"InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"}:
            raise
        found = []
    image = found[0] if found else None
    problems = image_problems(image, image_id, volume_gb)
    if problems:
        raise ImageError("; ".join(problems))
    return Image(image_id, image.get("Name") or "unnamed", source)
