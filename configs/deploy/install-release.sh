#!/usr/bin/env bash
# Install a gpuorch release on this host, switch between installed releases, or list them.
#
#   sudo configs/deploy/install-release.sh install --role always-on|gpu
#       Run from the gpuorch source tree to install (a checkout at a release tag, or an unpacked archive).
#       Copies it to /opt/gpuorch/releases/<version> and builds that release's own virtualenv. On a host with
#       no release yet it also activates it (below); otherwise the running release stays current until you
#       activate the new one, so you can check it first.
#   sudo configs/deploy/install-release.sh activate <version> --role always-on|gpu
#       Point /opt/gpuorch/current at an installed release (an upgrade, or a rollback to an earlier one) and
#       install that release's systemd units for the role. It restarts nothing: restart right after it (the
#       commands are printed), so no process runs one release's code with the other's.
#   configs/deploy/install-release.sh list
#       The installed releases; the current one is marked.
#
# Environment: PYTHON (python3.11), GPUORCH_RELEASE_VERSION (the release's name; default: the package version and the
# git commit, or the time), DESTDIR (stage everything under this folder instead of /: no user is
# created, nothing is chowned, systemctl is not called; for building images and for tests), SKIP_VENV=1 (do
# not build the virtualenv: for tests).
set -euo pipefail

PYTHON="${PYTHON:-python3.11}"
DESTDIR="${DESTDIR:-}"
BASE="$DESTDIR/opt/gpuorch"
UNIT_DIR="$DESTDIR/etc/systemd/system"
ENV_FILE="$DESTDIR/etc/gpuorch/gpuorch.env"
SOURCE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"

ALWAYS_ON_UNITS=(gpuorch.target gpuorch-api.service gpuorch-control-worker.service gpuorch-beat.service
                 gpuorch-flower.service)
GPU_UNITS=(gpuorch-models-sync.service comfyui.service gpuorch-gpu-worker.service comfyui-prune.service
           comfyui-prune.timer)

die() { echo "install-release: $*" >&2; exit 1; }
run() { if [[ -n "$DESTDIR" ]]; then echo "(DESTDIR set, not run) $*"; else "$@"; fi; }

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2
  exit 64
}

units_of() {
  case "$1" in
    always-on) echo "${ALWAYS_ON_UNITS[@]}" ;;
    gpu) echo "${GPU_UNITS[@]}" ;;
    *) die "--role must be always-on or gpu, not '$1'" ;;
  esac
}

release_version() {
  local version
  if [[ -n "${GPUORCH_RELEASE_VERSION:-}" ]]; then
    [[ "$GPUORCH_RELEASE_VERSION" =~ ^[A-Za-z0-9._+-]+$ ]] || die "GPUORCH_RELEASE_VERSION: letters, digits, . _ + - only"
    echo "$GPUORCH_RELEASE_VERSION"
    return
  fi
  version="$(sed -n -E 's/^__version__ = "([^"]+)"/\1/p' "$SOURCE/gpuorch/__init__.py")"
  [[ -n "$version" ]] || die "no __version__ in $SOURCE/gpuorch/__init__.py: is this a gpuorch source tree?"
  if git -C "$SOURCE" rev-parse --git-dir >/dev/null 2>&1; then
    version="$version-$(git -C "$SOURCE" describe --always --dirty --abbrev=8)"
  else
    version="$version-$(date -u +%Y%m%d%H%M%S)"
  fi
  echo "$version"
}

install_units() {
  local release="$1" role="$2" unit
  mkdir -p "$UNIT_DIR"
  for unit in $(units_of "$role"); do
    install -m 0644 "$release/configs/deploy/systemd/$unit" "$UNIT_DIR/$unit"
  done
  run systemctl daemon-reload
}

point_current_at() {
  local release="$1"
  # A new link renamed over the old one: /opt/gpuorch/current is never missing, even for an instant.
  ln -sfn "releases/$(basename "$release")" "$BASE/current.new"
  mv -T "$BASE/current.new" "$BASE/current"
}

next_steps() {
  local role="$1"
  echo
  echo "/opt/gpuorch/current -> $(readlink "$BASE/current")"
  if [[ ! -f "$ENV_FILE" ]] || grep -q CHANGE-ME "$ENV_FILE"; then
    echo "Edit $ENV_FILE first (docs/DEPLOYMENT.md, 'Settings')."
  fi
  if [[ "$role" == always-on ]]; then
    echo "First time: sudo systemctl enable gpuorch.target gpuorch-api gpuorch-control-worker gpuorch-flower"
    echo "            and on ONE host only: sudo systemctl enable gpuorch-beat"
    echo "Then:       sudo systemctl restart gpuorch.target"
  else
    echo "First time: sudo configs/deploy/gpu-instance/setup-comfyui.sh   (ComfyUI, PyTorch, the model files)"
    echo "            sudo systemctl enable gpuorch-models-sync comfyui gpuorch-gpu-worker comfyui-prune.timer"
    echo "Then:       sudo systemctl restart gpuorch-gpu-worker   (running jobs finish first; comfyui only if it changed)"
  fi
}

cmd_install() {
  local role="$1" version release
  [[ -n "$DESTDIR" || $EUID -eq 0 ]] || die "run as root (sudo)"
  units_of "$role" >/dev/null
  version="$(release_version)"
  release="$BASE/releases/$version"
  [[ ! -e "$release" ]] || die "$release exists already; to use it again: $0 activate $version --role $role"
  echo "Installing gpuorch $version from $SOURCE into $release"
  mkdir -p "$release"
  tar -C "$SOURCE" \
      --exclude=./.git --exclude=./.venv --exclude=./.local-stack --exclude=./demo-output --exclude=./build \
      --exclude='*.egg-info' --exclude='__pycache__' --exclude='./celerybeat-schedule*' --exclude=./.pytest_cache \
      -cf - . | tar -C "$release" --no-same-owner -xf -
  if [[ "${SKIP_VENV:-}" != 1 ]]; then
    "$PYTHON" -m venv "$release/.venv"
    "$release/.venv/bin/python" -m pip install --quiet --upgrade pip
    # Editable: the release folder is the package's home, so its configs/ and Procfile are found in it. The
    # release's constraints.txt pins every library, so hosts installed on different days run the same ones.
    "$release/.venv/bin/python" -m pip install --quiet -c "$release/constraints.txt" -e "$release"
    "$release/.venv/bin/python" -m compileall -q "$release/gpuorch" "$release/workers" "$release/webapp" \
        "$release/lifecycle" >/dev/null
    "$release/.venv/bin/gpuorch" --version
  fi
  # Installed code is root's: neither the login user who cloned the source nor a service user may change it.
  run chown -R root:root "$release"
  chmod -R go-w "$release"

  if ! id gpuorch >/dev/null 2>&1; then
    run useradd --system --home-dir /var/lib/gpuorch --shell /usr/sbin/nologin --user-group gpuorch
  fi
  if [[ ! -f "$ENV_FILE" ]]; then
    install -d -m 0755 "$(dirname "$ENV_FILE")"
    install -m 0640 "$release/configs/deploy/gpuorch.env.example" "$ENV_FILE"
    run chown root:gpuorch "$ENV_FILE"
    echo "Created $ENV_FILE from the example."
  fi
  if [[ -L "$BASE/current" ]]; then
    echo
    echo "Installed. $(readlink "$BASE/current") stays current until you activate this one. Check it first:"
    echo "  $release/.venv/bin/gpuorch workflows check          (on the GPU instance, with the settings loaded)"
    echo "then: sudo $0 activate $version --role $role"
    return
  fi
  cmd_activate "$version" "$role"
}

cmd_activate() {
  local version="$1" role="$2" release
  [[ -n "$DESTDIR" || $EUID -eq 0 ]] || die "run as root (sudo)"
  release="$BASE/releases/$version"
  [[ -d "$release" ]] || die "no release $version under $BASE/releases (see: $0 list)"
  install_units "$release" "$role"
  point_current_at "$release"
  next_steps "$role"
}

cmd_list() {
  local current="" release
  [[ -L "$BASE/current" ]] && current="$(basename "$(readlink "$BASE/current")")"
  for release in "$BASE"/releases/*/; do
    [[ -d "$release" ]] || continue
    release="$(basename "$release")"
    if [[ "$release" == "$current" ]]; then echo "* $release"; else echo "  $release"; fi
  done
}

command="${1:-}"
[[ -n "$command" ]] || usage
shift
role=""
version=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --role) role="${2:-}"; shift 2 ;;
    --role=*) role="${1#--role=}"; shift ;;
    -h|--help) usage ;;
    *) [[ -z "$version" ]] || usage; version="$1"; shift ;;
  esac
done

case "$command" in
  install) [[ -n "$role" && -z "$version" ]] || usage; cmd_install "$role" ;;
  activate) [[ -n "$role" && -n "$version" ]] || usage; cmd_activate "$version" "$role" ;;
  list) cmd_list ;;
  *) usage ;;
esac
