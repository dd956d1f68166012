"""The IAM documents of configs/deploy/iam, rendered by gpuorch's own renderer (gpuorch.deploy.policies)."""

from __future__ import annotations

import dataclasses

from gpuorch.deploy import policies as render
from gpuorch.settings import Settings
from tests.paths import REPO

ROOT = REPO
IAM_DIR = render.IAM_DIR
ACCOUNT = "123456789012"
EBS_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def full_settings(**overrides) -> Settings:
    """Settings with every optional feature on, so every document applies."""
    return dataclasses.replace(
        Settings(), input_buckets=("partner-uploads", "archive-images"),
        **{"fallback_instance_types": ("g6e.xlarge",), "models_mirror": "s3://acme-models/qwen", "ebs_kms_key": EBS_KEY,
           **overrides},
    )


def rendered(settings: Settings, account: str = ACCOUNT) -> dict[str, dict]:
    """Every document, rendered for `settings` (the optional ones too)."""
    return render.render_all(settings, account, every=True)
