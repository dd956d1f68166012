#!/usr/bin/env bash
# Set up ComfyUI on the GPU instance for gpuorch: ComfyUI at a pinned release in /opt/ComfyUI with its own
# virtualenv and PyTorch for the installed NVIDIA driver, the model files the workflow folders declare, and a check
# that PyTorch sees the GPU. Safe to run again: what is in place is kept (model files verified before are not
# fetched or hashed again).
#
#   sudo configs/deploy/gpu-instance/setup-comfyui.sh
#
# Run it after install-release.sh --role gpu and after editing /etc/gpuorch/gpuorch.env: the model files are
# brought by gpuorch-models-sync.service, the unit that brings them at every boot (`gpuorch models sync`), with the
# settings of that file (GPUORCH_MODELS_DIR, GPUORCH_MODELS_STORE, GPUORCH_MODELS_MIRROR; docs/DEPLOYMENT.md).
#
# Environment (defaults in brackets):
#   COMFYUI_REF       ComfyUI git tag or commit [v0.8.0: the version gpuorch's templates are checked against]
#   COMFYUI_REPO      [https://github.com/comfyanonymous/ComfyUI.git]
#   TORCH_INDEX_URL   PyTorch wheel index matching the driver's CUDA [https://download.pytorch.org/whl/cu130]
#   PYTHON            [python3.11]
set -euo pipefail

COMFYUI_REF="${COMFYUI_REF:-v0.8.0}"
COMFYUI_REPO="${COMFYUI_REPO:-https://github.com/comfyanonymous/ComfyUI.git}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu130}"
PYTHON="${PYTHON:-python3.11}"
COMFYUI=/opt/ComfyUI
GPUORCH=/opt/gpuorch/current
ENV_FILE=/etc/gpuorch/gpuorch.env

say() { echo "setup-comfyui: $*"; }
die() { echo "setup-comfyui: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (sudo)"
[[ -x "$GPUORCH/.venv/bin/python" ]] || die "install gpuorch first: sudo configs/deploy/install-release.sh install --role gpu"
[[ -f "$ENV_FILE" ]] || die "$ENV_FILE is missing (install-release.sh creates it from the example)"

# 1. The driver, and the CUDA version it supports against the one the PyTorch wheels need.
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: use an AMI with the NVIDIA driver (docs/DEPLOYMENT.md)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || die "the driver sees no GPU"
driver_cuda="$(nvidia-smi | sed -n -E 's/.*CUDA Version: ([0-9]+)\.([0-9]+).*/\1\2/p' | head -n 1)"
wheel_cuda="$(sed -n -E 's#.*/cu([0-9]+)/?$#\1#p' <<<"$TORCH_INDEX_URL")"
if [[ -n "$driver_cuda" && -n "$wheel_cuda" && "$((10#$wheel_cuda))" -gt "$((10#$driver_cuda))" ]]; then
  die "the driver supports CUDA ${driver_cuda} (x10), the wheels at $TORCH_INDEX_URL need ${wheel_cuda}: upgrade the driver or pick an older index, e.g. TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128"
fi

# 2. The service user. It owns ComfyUI's data folders only: the code and its virtualenv stay root's (step 3).
if ! id comfyui >/dev/null 2>&1; then
  useradd --system --home-dir /var/cache/comfyui --no-create-home --shell /usr/sbin/nologin --user-group comfyui
fi

# 3. ComfyUI at the pinned release, its virtualenv, PyTorch for this driver, ComfyUI's requirements.
if [[ ! -d "$COMFYUI/.git" ]]; then
  git clone --quiet "$COMFYUI_REPO" "$COMFYUI"
fi
git -C "$COMFYUI" fetch --quiet --tags origin
git -C "$COMFYUI" -c advice.detachedHead=false checkout --quiet "$COMFYUI_REF"
say "ComfyUI $(git -C "$COMFYUI" describe --tags --always)"
[[ -x "$COMFYUI/.venv/bin/python" ]] || "$PYTHON" -m venv "$COMFYUI/.venv"
"$COMFYUI/.venv/bin/python" -m pip install --quiet --upgrade pip
"$COMFYUI/.venv/bin/python" -m pip install --quiet torch torchvision torchaudio --index-url "$TORCH_INDEX_URL"
"$COMFYUI/.venv/bin/python" -m pip install --quiet -r "$COMFYUI/requirements.txt"

data_dirs=("$COMFYUI/models" "$COMFYUI/input" "$COMFYUI/output" "$COMFYUI/temp" "$COMFYUI/user")
mkdir -p "${data_dirs[@]}"
chown -R root:root "$COMFYUI"
chmod -R go-w "$COMFYUI"
chown -R comfyui:comfyui "${data_dirs[@]}"

# 4. The model files the workflow folders declare (models.json), fetched and verified by the unit that brings them
#    at every boot, with the settings of $ENV_FILE.
grep -q '^GPUORCH_MODELS_DIR=/' "$ENV_FILE" || die "set GPUORCH_MODELS_DIR=$COMFYUI/models in $ENV_FILE (docs/DEPLOYMENT.md)"
systemctl daemon-reload
if ! systemctl restart gpuorch-models-sync.service; then
  journalctl -u gpuorch-models-sync.service -b --no-pager -n 30 >&2
  die "the model sync failed: each file it could not bring is named above"
fi
journalctl -u gpuorch-models-sync.service -b --no-pager -n 12 -o cat

# 5. PyTorch sees the GPU as the service user.
install -d -o comfyui -g comfyui -m 0750 /var/cache/comfyui
sudo -u comfyui env HOME=/var/cache/comfyui "$COMFYUI/.venv/bin/python" -c '
import torch
assert torch.cuda.is_available(), "PyTorch sees no CUDA device"
print("setup-comfyui: PyTorch", torch.__version__, "on", torch.cuda.get_device_name(0))
'
say "done. Next: sudo systemctl enable gpuorch-models-sync && sudo systemctl enable --now comfyui, then check the templates against it (docs/DEPLOYMENT.md)."
