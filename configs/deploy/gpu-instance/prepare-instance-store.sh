#!/usr/bin/env bash
# Mount the GPU instance's NVMe instance store for the model files, when GPUORCH_MODELS_STORE=instance-store; with
# any other store it does nothing. Run as root by gpuorch-models-sync.service (ExecStartPre=+) at every boot, with
# /etc/gpuorch/gpuorch.env in its environment.
#
# A stop wipes the instance store: each boot finds a blank device, so it is formatted when it holds no file system
# (a restart without a stop finds the one made at boot, and keeps it). Several instance-store disks: the first one.
#
# Environment: GPUORCH_MODELS_STORE [volume], GPUORCH_INSTANCE_STORE_DIR [/mnt/instance-store]
set -euo pipefail

STORE="${GPUORCH_MODELS_STORE:-volume}"
MOUNT="${GPUORCH_INSTANCE_STORE_DIR:-/mnt/instance-store}"
OWNER=comfyui  # the sync unit's User=, which writes the files

say() { echo "prepare-instance-store: $*"; }
die() { echo "prepare-instance-store: $*" >&2; exit 1; }

if [[ "$STORE" != instance-store ]]; then
  say "GPUORCH_MODELS_STORE=$STORE: the model files stay on the volume; nothing to mount"
  exit 0
fi
if mountpoint -q "$MOUNT"; then
  say "$MOUNT is mounted already"
else
  # Nitro instances name their instance-store disks by-id "nvme-Amazon_EC2_NVMe_Instance_Storage_<serial>".
  device=""
  for disk in /dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*; do
    if [[ -e "$disk" && "$disk" != *-part* ]]; then device="$disk"; break; fi
  done
  [[ -n "$device" ]] || die "no instance-store disk on this instance (its type has none?): set GPUORCH_MODELS_STORE=volume"
  if ! blkid "$device" >/dev/null 2>&1; then
    say "formatting $device (blank after a stop)"
    mkfs.ext4 -q -F -L gpuorch-models -E nodiscard "$device"
  fi
  mkdir -p "$MOUNT"
  mount -o noatime "$device" "$MOUNT"
  say "mounted $device on $MOUNT"
fi
mkdir -p "$MOUNT/models"
chown "$OWNER:$OWNER" "$MOUNT/models"
