"""What the stack's instances are told at boot: their settings file, and the user data that installs the release.

The user data runs at every boot (a cloud-config part asks cloud-init for it), so a stack update that changes the
settings or the release reaches an instance at its next start: configs/deploy/bootstrap.sh, shipped in the release,
is idempotent and restarts only what changed.
"""

from __future__ import annotations

import shlex
from typing import Any

from gpuorch.settings import Settings, settings_env

HOST, GPU = "always-on", "gpu"
ROLES = (HOST, GPU)
API_PORT = 8080
COMFYUI_MODELS = "/opt/ComfyUI/models"
# Settings that mean something on one machine only: the local stand-ins, a client's key, an instance's own id.
NOT_SHIPPED = ("GPUORCH_AWS_ENDPOINT_URL", "GPUORCH_API_KEY", "GPUORCH_INSTANCE_ID", "GPUORCH_INSTANCE_METADATA_URL",
               "GPUORCH_ALLOW_INSECURE_INPUTS", "GPUORCH_FLOWER_ALLOW_NO_AUTH", "GPUORCH_FLOWER_BASIC_AUTH")
BOUNDARY = "==gpuorch-boot=="


def environment(settings: Settings, role: str, *, api_url: str, decided: dict[str, str] | None = None) -> dict[str, str]:
    """The settings file of an instance of `role`: every setting that differs from its default (so the file reads
    as what this deployment chose), less NOT_SHIPPED, plus what the stack decides for that role and, for both,
    `decided` (what the stack's options decide: the model store, the pool's size)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    defaults = settings_env(Settings())
    chosen = {var: value for var, value in settings_env(settings).items()
              if value != defaults[var] and var not in NOT_SHIPPED}
    chosen["GPUORCH_REGION"] = settings.region
    chosen["GPUORCH_API_URL"] = api_url
    chosen.update(decided or {})
    if role == HOST:
        # Behind the load balancer, whose security group is the only one the host's lets in (Flower stays on loopback).
        chosen["GPUORCH_API_BIND"] = f"0.0.0.0:{API_PORT}"
    else:
        chosen["GPUORCH_MODELS_DIR"] = settings.models_dir or COMFYUI_MODELS
    return dict(sorted(chosen.items()))


def env_file(values: dict[str, str]) -> str:
    """KEY=value lines as systemd's EnvironmentFile= and `set -a; . file` both read them."""
    for var, value in values.items():
        if "\n" in value or value != value.strip():
            raise ValueError(f"{var}: a value of the settings file cannot hold a line break or edge spaces")
    return "".join(f"{var}={value}\n" for var, value in values.items())


def user_data(role: str, environment_text: str, *, region: str, release_bucket: Any, release_key: Any,
              release_version: Any, wait_url: Any = "") -> list[Any]:
    """The MIME user data of an instance, as parts for Fn::Join (strings, and Refs the stack fills in)."""
    script = [
        "#!/bin/bash\n",
        f"# gpuorch {role} instance, written by `gpuorch deploy`'s stack. Runs at every boot (the cloud-config part\n",
        "# above): unpacks the release once, writes the stack's settings, hands over to configs/deploy/bootstrap.sh.\n",
        "set -euo pipefail\n",
        "umask 022\n",
        "version=", release_version, "\n",
        "release=s3://", release_bucket, "/", release_key, "\n",
        "wait_url='", wait_url, "'\n",
        "stage=/opt/gpuorch/incoming/$version\n",
        "install -d -m 0755 /etc/gpuorch\n",
        "cat > /etc/gpuorch/gpuorch.env.stack <<'GPUORCH_SETTINGS'\n",
        environment_text,
        "GPUORCH_SETTINGS\n",
        "chmod 0600 /etc/gpuorch/gpuorch.env.stack\n",
        'if [ ! -x "$stage/configs/deploy/bootstrap.sh" ]; then\n',
        "  command -v aws >/dev/null || [ -x /snap/bin/aws ] || snap install aws-cli --classic\n",
        '  export PATH="$PATH:/snap/bin"\n',
        '  install -d -m 0755 "$stage.partial"\n',
        f'  aws s3 cp --region {shlex.quote(region)} "$release" - | tar -xz --no-same-owner -C "$stage.partial"\n',
        '  rm -rf "$stage" && mv "$stage.partial" "$stage"\n',
        "fi\n",
        f'exec "$stage/configs/deploy/bootstrap.sh" {role} "$version" "$wait_url"\n',
    ]
    return [
        f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\nMIME-Version: 1.0\n\n',
        f"--{BOUNDARY}\n",
        'Content-Type: text/cloud-config; charset="us-ascii"\nMIME-Version: 1.0\n\n',
        "#cloud-config\ncloud_final_modules:\n- [scripts-user, always]\n\n",
        f"--{BOUNDARY}\n",
        'Content-Type: text/x-shellscript; charset="us-ascii"\nMIME-Version: 1.0\n\n',
        *script,
        f"\n--{BOUNDARY}--\n",
    ]


def joined(parts: list[Any]) -> str:
    """The user data as one string, its Refs written as ${Name} (for tests and for reading)."""
    return "".join(part if isinstance(part, str) else "${" + part["Ref"] + "}" for part in parts)

