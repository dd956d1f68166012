"""A workflow added as a folder alone runs end to end: the GPU worker's start-up checks read its model file from the
folder (the local GPU's ComfyUI holds what the folders declare), and its job succeeds through the generic route."""

from __future__ import annotations

import io
import shutil

from PIL import Image

from gpuorch.aws.s3 import parse_s3_uri
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from tests.paths import UPSCALE_WORKFLOW


def test_a_new_workflow_folder_runs_with_no_code_written_for_it(make_stack, tmp_path):
    root = tmp_path / "workflows"
    shutil.copytree(BUILTIN_WORKFLOWS, root)
    shutil.copytree(UPSCALE_WORKFLOW, root / "upscale")
    stack = make_stack(step_seconds=0.02, workflows_dir=str(root))

    answer = stack.session.post(f"{stack.api_url}/api/v1/workflows/upscale/jobs", json={"image": stack.image_uri},
                                timeout=10)
    assert answer.status_code == 202, answer.text
    record = stack.wait_terminal(answer.json()["job_id"])

    assert record["status"] == "succeeded", record
    [output] = record["outputs"]
    address = parse_s3_uri(output["uri"])
    upscaled = Image.open(io.BytesIO(stack.services.aws.s3.get_object(Bucket=address.bucket,
                                                                      Key=address.key)["Body"].read()))
    source = parse_s3_uri(stack.image_uri)
    original = Image.open(io.BytesIO(stack.services.aws.s3.get_object(Bucket=source.bucket,
                                                                      Key=source.key)["Body"].read()))
    assert upscaled.size == (original.width * 2, original.height * 2)
