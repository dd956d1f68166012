"""Which EC2 instance a GPU worker runs on: its setting, else EC2's instance metadata service, asked only on EC2.

Off EC2 the metadata address (169.254.169.254) is nobody's, or someone else's: a laptop or a workstation must not
send it anything. Whether this machine is an EC2 instance is read from what the machine says about itself, the
signs AWS documents ("Detect whether a host is an EC2 instance"): on the Nitro system the DMI board asset tag is
the instance id and the DMI vendor is "Amazon EC2"; on Xen the hypervisor's UUID starts with "ec2". The system
UUID sign is left out: only root may read it, and the GPU worker does not run as root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import requests

from gpuorch.aws.ec2 import is_instance_id
from gpuorch.errors import ConfigurationError

IMDS_ENDPOINT = "http://169.254.169.254"
IMDS_TOKEN_TTL_S = 60
EC2_VENDOR = "Amazon EC2"
DMI_DIR = Path("/sys/devices/virtual/dmi/id")
HYPERVISOR_UUID = Path("/sys/hypervisor/uuid")
# (method, url, headers, timeout in seconds) -> response body; raises OSError (requests' errors are) on failure.
HttpRequest = Callable[[str, str, Mapping[str, str], float], str]


class IdentityError(ConfigurationError):
    """The worker cannot tell which EC2 instance it runs on."""


@dataclass(frozen=True)
class PlatformSigns:
    """What the machine says about itself; empty where a file is missing or unreadable."""

    board_asset_tag: str = ""
    sys_vendor: str = ""
    bios_vendor: str = ""
    hypervisor_uuid: str = ""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def read_platform_signs(dmi_dir: Path = DMI_DIR, hypervisor_uuid: Path = HYPERVISOR_UUID) -> PlatformSigns:
    """The DMI and hypervisor files that tell an EC2 instance, as this machine has them (all readable without root)."""
    return PlatformSigns(
        board_asset_tag=_read(dmi_dir / "board_asset_tag"),
        sys_vendor=_read(dmi_dir / "sys_vendor"),
        bios_vendor=_read(dmi_dir / "bios_vendor"),
        hypervisor_uuid=_read(hypervisor_uuid),
    )


def runs_on_ec2(signs: PlatformSigns) -> bool:
    """True when the machine's own signs say it is an EC2 instance (Nitro or Xen)."""
    return (
        is_instance_id(signs.board_asset_tag)
        or EC2_VENDOR in (signs.sys_vendor, signs.bios_vendor)
        or signs.hypervisor_uuid.lower().startswith("ec2")
    )


def metadata_endpoint(configured_url: str, on_ec2: bool) -> str | None:
    """The instance metadata service to ask: the configured one anywhere, else EC2's own on EC2; None: ask nobody."""
    if configured_url.strip():
        return configured_url.strip().rstrip("/")
    return IMDS_ENDPOINT if on_ec2 else None


def http_request(method: str, url: str, headers: Mapping[str, str], timeout: float) -> str:
    """One plain HTTP call (no proxy: the metadata address is link-local), its body on a 2xx answer."""
    session = requests.Session()
    session.trust_env = False
    with session:
        answer = session.request(method, url, headers=dict(headers), timeout=timeout, allow_redirects=False)
        answer.raise_for_status()
        return answer.text


class InstanceMetadata:
    """EC2's instance metadata service at one endpoint, spoken as IMDSv2: a session token by PUT, then GETs with it.

    Short timeouts: the service answers from the instance itself, in milliseconds, or not at all.
    """

    def __init__(self, endpoint: str, *, request: HttpRequest = http_request, timeout: float = 1.0):
        self.endpoint = endpoint.rstrip("/")
        self._request = request
        self._timeout = timeout

    def get(self, path: str) -> str:
        """The text at `path` under /latest/ (e.g. "meta-data/instance-id"); OSError when the service fails."""
        token = self._request("PUT", f"{self.endpoint}/latest/api/token",
                              {"X-aws-ec2-metadata-token-ttl-seconds": str(IMDS_TOKEN_TTL_S)}, self._timeout)
        return self._request("GET", f"{self.endpoint}/latest/{path.lstrip('/')}",
                             {"X-aws-ec2-metadata-token": token.strip()}, self._timeout).strip()

    def find(self, path: str) -> str | None:
        """Like `get`, but None where the service has nothing at `path` (404: spot/instance-action until a notice)."""
        try:
            return self.get(path)
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return None
            raise


def instance_identity(configured_id: str, metadata_url: str = "", *,
                      signs: Callable[[], PlatformSigns] = read_platform_signs,
                      request: HttpRequest = http_request, timeout: float = 1.0) -> str:
    """The configured instance id, else the one the instance metadata service gives, asked only where
    `metadata_endpoint` says so; IdentityError, without any connection, where there is none to ask."""
    if configured_id.strip():
        return configured_id.strip()
    endpoint = metadata_endpoint(metadata_url, runs_on_ec2(signs()))
    if endpoint is None:
        raise IdentityError(
            "no instance id: GPUORCH_INSTANCE_ID is empty and this machine is not an EC2 instance (its DMI does not "
            "say so), so the instance metadata service is not asked; set GPUORCH_INSTANCE_ID (or "
            "GPUORCH_INSTANCE_METADATA_URL)"
        )
    try:
        found = InstanceMetadata(endpoint, request=request, timeout=timeout).get("meta-data/instance-id")
    except OSError as exc:
        raise IdentityError(
            f"no instance id: GPUORCH_INSTANCE_ID is empty and the instance metadata service at {endpoint} "
            f"did not answer ({exc}); set GPUORCH_INSTANCE_ID"
        ) from exc
    if not is_instance_id(found):
        raise IdentityError(f"the instance metadata service at {endpoint} answered {found[:40]!r}, not an instance id")
    return found
