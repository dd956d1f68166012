#!/usr/bin/env bash
# Set up ComfyUI on the GPU instance for gpuorch: ComfyUI at a pinned release in /opt/ComfyUI with its own
# virtualenv and PyTorch for the installed NVIDIA driver, the model files gpuorch's settings name, and a check
# that PyTorch sees the GPU. Safe to run again: what is in place is kept (model files already present are not
# downloaded again).
#
#   sudo configs/deploy/gpu-instance/setup-comfyui.sh
#
# Run it after install-release.sh --role gpu and after editing /etc/gpuorch/gpuorch.env: the model file names
# come from those settings (GPUORCH_DIFFUSION_MODEL ...), read by gpuorch itself.
#
# Environment (defaults in brackets):
#   COMFYUI_REF       ComfyUI git tag or commit [v0.8.0: the version gpuorch's templates are checked against]
#   COMFYUI_REPO      [https://github.com/comfyanonymous/ComfyUI.git]
#   TORCH_INDEX_URL   PyTorch wheel index matching the driver's CUDA [https://download.pytorch.org/whl/cu130]
#   PYTHON            [python3.11]
#   HF_TOKEN          a Hugging Face token, if the model downloads need one
#   MODEL_URL_<ROLE>  where to download a model file from, e.g. MODEL_URL_CAMERA_LORA=https://...; required for a
#                     file renamed in the settings; also accepts s3://bucket/key (a private copy, needs the AWS CLI
#                     and s3:GetObject on it)
set -euo pipefail

COMFYUI_REF="${COMFYUI_REF:-v0.8.0}"
COMFYUI_REPO="${COMFYUI_REPO:-https://github.com/comfyanonymous/ComfyUI.git}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu130}"
PYTHON="${PYTHON:-python3.11}"
COMFYUI=/opt/ComfyUI
GPUORCH=/opt/gpuorch/current
ENV_FILE=/etc/gpuorch/gpuorch.env

# The published source of each default model file (role -> URL); the file is saved under the configured name.
declare -A DEFAULT_URL=(
  [diffusion_model]=https://huggingface.co/Comfy-Org/Qwen-Image-Edit_ComfyUI/resolve/main/split_files/diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors
  [text_encoder]=https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors
  [vae]=https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/vae/qwen_image_vae.safetensors
  [lightning_4step_lora]=https://huggingface.co/lightx2v/Qwen-Image-Lightning/resolve/main/Qwen-Image-Lightning-4steps-V1.0.safetensors
  [lightning_8step_lora]=https://huggingface.co/lightx2v/Qwen-Image-Lightning/resolve/main/Qwen-Image-Lightning-8steps-V1.1.safetensors
  # Published as 镜头转换.safetensors ("camera change"); saved as GPUORCH_CAMERA_LORA.
  [camera_lora]=https://huggingface.co/dx8152/Qwen-Edit-2509-Multiple-angles/resolve/main/%E9%95%9C%E5%A4%B4%E8%BD%AC%E6%8D%A2.safetensors
)
# The default file name of each role (gpuorch.workflows.models.ModelFiles): a renamed file needs MODEL_URL_<ROLE>.
declare -A DEFAULT_NAME=(
  [diffusion_model]=qwen_image_edit_2509_fp8_e4m3fn.safetensors
  [text_encoder]=qwen_2.5_vl_7b_fp8_scaled.safetensors
  [vae]=qwen_image_vae.safetensors
  [lightning_4step_lora]=Qwen-Image-Lightning-4steps-V1.0.safetensors
  [lightning_8step_lora]=Qwen-Image-Lightning-8steps-V1.1.safetensors
  [camera_lora]=Qwen-Edit-2509-Multiple-angles.safetensors
)

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

# 2. The service user, owning its own tree (comfyui.service may write nowhere else).
if ! id comfyui >/dev/null 2>&1; then
  useradd --system --home-dir "$COMFYUI" --shell /usr/sbin/nologin --user-group comfyui
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

# 4. The model files, named as gpuorch's settings say, in the ComfyUI folder each loader reads.
models="$(sudo -u gpuorch env -i PATH=/usr/bin:/bin bash -c \
  "set -a; . '$ENV_FILE'; set +a; exec '$GPUORCH/.venv/bin/python' -c '
from gpuorch.settings import Settings
from gpuorch.workflows.models import ModelFiles
files = Settings.from_env().models
for role in ModelFiles.roles():
    print(role, ModelFiles.folder_of(role), files.file(role))
'")"
while read -r role folder name; do
  target="$COMFYUI/models/$folder/$name"
  if [[ -s "$target" ]]; then
    say "present: models/$folder/$name"
    continue
  fi
  override="MODEL_URL_${role^^}"
  url="${!override:-}"
  if [[ -z "$url" ]]; then
    [[ "$name" == "${DEFAULT_NAME[$role]}" ]] || die "models/$folder/$name is not a default file: set $override or put it there"
    url="${DEFAULT_URL[$role]}"
  fi
  say "downloading models/$folder/$name from $url"
  mkdir -p "$COMFYUI/models/$folder"
  if [[ "$url" == s3://* ]]; then
    aws s3 cp --only-show-errors "$url" "$target.part"
  else
    curl --fail --location --silent --show-error --retry 5 --retry-all-errors \
         ${HF_TOKEN:+--header "Authorization: Bearer $HF_TOKEN"} --output "$target.part" "$url"
  fi
  mv "$target.part" "$target"
done <<<"$models"

mkdir -p "$COMFYUI/input" "$COMFYUI/output" "$COMFYUI/temp" "$COMFYUI/user"
chown -R comfyui:comfyui "$COMFYUI"

# 5. PyTorch sees the GPU as the service user.
sudo -u comfyui env HOME="$COMFYUI" "$COMFYUI/.venv/bin/python" -c '
import torch
assert torch.cuda.is_available(), "PyTorch sees no CUDA device"
print("setup-comfyui: PyTorch", torch.__version__, "on", torch.cuda.get_device_name(0))
'
say "done. Next: sudo systemctl enable --now comfyui, then check the templates against it (docs/DEPLOYMENT.md)."
