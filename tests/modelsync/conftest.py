"""Model files of a few hundred kilobytes in a moto S3 bucket, and workflow folders declaring them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from gpuorch.workflows import load_workflows
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from gpuorch.workflows.models import MODELS_FILE
from tests.support.model_files import builtin_file

# The ComfyUI folder of each role the built-in workflows declare.
BUILTIN_FOLDERS = {model.role: model.folder for workflow in load_workflows() for model in workflow.models}
# Part size of the tests' fetches: files of a few hundred kilobytes span several parts.
SMALL_PARTS = 64 * 1024


@dataclass(frozen=True)
class Stored:
    """A model file's bytes, and where the test put them."""

    role: str
    data: bytes
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def declaration(self) -> dict:
        return {"role": self.role, "name": builtin_file(self.role), "folder": BUILTIN_FOLDERS[self.role],
                "bytes": len(self.data), "sha256": self.sha256, "source": self.source}

    @property
    def path(self) -> str:
        return f"{BUILTIN_FOLDERS[self.role]}/{builtin_file(self.role)}"


@pytest.fixture
def s3(moto_endpoint):
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def model_bucket(s3) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def stored_models(s3, model_bucket) -> dict[str, Stored]:
    """The camera-angle workflow's five model roles, each a file of random bytes in the model bucket."""
    models = {}
    for n, role in enumerate(("diffusion_model", "text_encoder", "vae", "lightning_8step_lora", "camera_lora")):
        data = os.urandom(100_000 + 37_000 * n)
        key = f"published/{role}.safetensors"
        s3.put_object(Bucket=model_bucket, Key=key, Body=data)
        models[role] = Stored(role, data, f"s3://{model_bucket}/{key}")
    return models


def declare(folder: Path, models: list[dict]) -> None:
    (folder / MODELS_FILE).write_text(json.dumps({"models": models}), encoding="utf-8")


@pytest.fixture
def workflows_dir(tmp_path, stored_models) -> Path:
    """A workflows folder holding camera-angle, its models.json declaring the stored files."""
    root = tmp_path / "workflows"
    shutil.copytree(BUILTIN_WORKFLOWS / "camera-angle", root / "camera-angle")
    declare(root / "camera-angle", [m.declaration for m in stored_models.values()])
    return root
