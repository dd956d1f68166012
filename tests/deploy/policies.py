"""The IAM documents of configs/deploy/iam, rendered by the operator's own renderer (configs/deploy/iam/render.py)."""

from __future__ import annotations

import dataclasses
import importlib.util

from gpuorch.settings import Settings
from tests.paths import REPO

ROOT = REPO
IAM_DIR = ROOT / "configs" / "deploy" / "iam"
ACCOUNT = "123456789012"


def _load_renderer():
    spec = importlib.util.spec_from_file_location("gpuorch_deploy_render", IAM_DIR / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_renderer()


def full_settings(**overrides) -> Settings:
    """Settings with every optional feature on, so every document applies."""
    return dataclasses.replace(
        Settings(), input_buckets=("partner-uploads", "archive-images"), fallback_instance_types=("g6e.xlarge",),
        **{"models_mirror": "s3://acme-models/qwen", **overrides},
    )


def rendered(settings: Settings, account: str = ACCOUNT) -> dict[str, dict]:
    """Every document, rendered for `settings` (the optional ones too)."""
    return render.render_all(settings, account, every=True)
