#!/usr/bin/env bash
# Bring an instance of `gpuorch deploy`'s stack to its release and settings. Its user data runs this at every boot
# from the unpacked release archive, as root:
#
#   configs/deploy/bootstrap.sh always-on|gpu VERSION [WAIT_URL]
#
# Idempotent: what is in place is kept, and only what changed is restarted.
#   1. Python 3.11 (deadsnakes), once.
#   2. The release VERSION installed with install-release.sh (root-owned, its own virtualenv) and made current.
#   3. /etc/gpuorch/gpuorch.env: the stack's settings (/etc/gpuorch/gpuorch.env.stack, from the user data) and, on
#      the always-on host, Flower's login, made here once (/etc/gpuorch/flower-login: it never leaves the host).
#   4. always-on: the API, control worker, beat and Flower enabled, restarted when the release or settings changed.
#      gpu, first boot: ComfyUI and the model files (setup-comfyui.sh), the templates checked against the running
#      ComfyUI, the stack's wait condition told (WAIT_URL), then power-off: the pool waits stopped for its first job.
#      gpu, later boots: the GPU worker restarted when the release or settings changed.
set -euo pipefail

role="${1:?usage: bootstrap.sh always-on|gpu VERSION [WAIT_URL]}"
version="${2:?usage: bootstrap.sh always-on|gpu VERSION [WAIT_URL]}"
wait_url="${3:-}"
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
state=/var/lib/gpuorch-bootstrap
env_file=/etc/gpuorch/gpuorch.env
changed=0

say() { echo "gpuorch-bootstrap: $*"; }

instance_id() {
  local token
  token="$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)"
  curl -fsS -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/instance-id
}

# Tell the stack's wait condition how the first boot went (once per instance; later boots have nothing to tell).
signal() {
  local status="$1" reason="$2" id
  [[ -n "$wait_url" && ! -e "$state/signalled" ]] || return 0
  id="$(instance_id)"
  curl -fsS -X PUT -H 'Content-Type:' --data-binary \
    "{\"Status\": \"$status\", \"Reason\": \"$reason\", \"UniqueId\": \"$id\", \"Data\": \"$id\"}" "$wait_url"
  touch "$state/signalled"
}
trap 'signal FAILURE "gpuorch bootstrap ($role) failed at line $LINENO: /var/log/cloud-init-output.log on the instance"' ERR

case "$role" in always-on|gpu) ;; *) echo "bootstrap: role must be always-on or gpu, not $role" >&2; exit 64 ;; esac
install -d -m 0700 "$state"

# 1. Python 3.11, which the release's virtualenv is built with.
if ! command -v python3.11 >/dev/null; then
  say "installing Python 3.11"
  export DEBIAN_FRONTEND=noninteractive
  add-apt-repository -y ppa:deadsnakes/ppa
  apt-get update -q
  apt-get install -y -q python3.11 python3.11-venv git curl openssl
fi

# 2. The release, installed once and made current.
if [[ ! -d "/opt/gpuorch/releases/$version" ]]; then
  say "installing release $version"
  GPUORCH_RELEASE_VERSION="$version" "$here/configs/deploy/install-release.sh" install --role "$role"
  changed=1
fi
if [[ "$(readlink /opt/gpuorch/current 2>/dev/null || true)" != "releases/$version" ]]; then
  "$here/configs/deploy/install-release.sh" activate "$version" --role "$role"
  changed=1
fi

# 3. The settings file: the stack's settings, and this host's own secrets.
next="$(mktemp)"
cat /etc/gpuorch/gpuorch.env.stack > "$next"
if [[ "$role" == always-on ]]; then
  if [[ ! -s /etc/gpuorch/flower-login ]]; then
    (umask 077; echo "ops:$(openssl rand -hex 16)" > /etc/gpuorch/flower-login)
  fi
  echo "GPUORCH_FLOWER_BASIC_AUTH=$(cat /etc/gpuorch/flower-login)" >> "$next"
fi
if ! cmp -s "$next" "$env_file"; then
  install -m 0640 -o root -g gpuorch "$next" "$env_file"
  say "settings written to $env_file"
  changed=1
fi
rm -f "$next"

# 4. The role's processes.
if [[ "$role" == always-on ]]; then
  systemctl enable gpuorch.target gpuorch-api gpuorch-control-worker gpuorch-flower gpuorch-beat
  if [[ "$changed" == 1 ]]; then
    systemctl restart gpuorch.target gpuorch-api gpuorch-control-worker gpuorch-flower gpuorch-beat
  fi
  say "always-on host ready with release $version"
  exit 0
fi

if [[ ! -e "$state/gpu-ready" ]]; then
  say "first boot: ComfyUI, PyTorch and the model files"
  "$here/configs/deploy/gpu-instance/setup-comfyui.sh"
  systemctl enable gpuorch-models-sync comfyui gpuorch-gpu-worker comfyui-prune.timer
  systemctl start comfyui
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null http://127.0.0.1:8188/system_stats && break
    sleep 5
  done
  runuser -u gpuorch -- bash -c 'set -a; . /etc/gpuorch/gpuorch.env; set +a; exec /opt/gpuorch/current/.venv/bin/gpuorch workflows check'
  touch "$state/gpu-ready"
  signal SUCCESS "GPU instance set up with release $version; the templates pass against its ComfyUI"
  say "set up: powering off (the lifecycle starts this instance when jobs arrive)"
  systemctl poweroff
  exit 0
fi
if [[ "$changed" == 1 ]]; then
  systemctl restart gpuorch-gpu-worker
fi
say "GPU instance on release $version"
