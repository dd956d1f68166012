"""End to end on real processes: REST and delay() jobs reach succeeded with outputs in S3."""

from __future__ import annotations

import base64

from gpuorch.aws.s3 import parse_s3_uri
from gpuorch.tasks import camera_angle, qwen_image_edit
from tests.integration.conftest import wait_for


def s3_object(stack, uri: str) -> bytes:
    address = parse_s3_uri(uri)
    return stack.services.aws.s3.get_object(Bucket=address.bucket, Key=address.key)["Body"].read()


def assert_outputs_in_s3(stack, record: dict) -> None:
    assert record["outputs"], record
    for output in record["outputs"]:
        assert output["uri"].startswith(f"s3://{stack.settings.bucket}/results/{record['job_id']}/")
        data = s3_object(stack, output["uri"])
        assert data.startswith(b"\x89PNG") and len(data) == output["bytes"]


def test_rest_camera_angle_job_succeeds_with_progress_in_between(stack):
    answer = stack.session.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs",
        json={"image": stack.image_uri, "move": "rotate_right", "degrees": 90},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    assert answer.headers["Location"].endswith(f"/api/v1/jobs/{job_id}")

    seen: list[tuple[str, int]] = []
    record = stack.wait_terminal(job_id, seen=seen)

    assert record["status"] == "succeeded", record
    assert record["progress"] == 100 and record["attempts"] == 1
    assert 8 * 0.15 <= record["gpu_seconds"] < 30  # 8 emulated sampler steps of 0.15 s, and the other nodes
    assert record["started_at"] and record["finished_at"]
    assert_outputs_in_s3(stack, record)
    assert any(status == "running" and 0 < progress < 100 for status, progress in seen), seen
    progresses = [p for status, p in seen if status == "running"]
    assert progresses == sorted(progresses), "progress went backwards"


def test_delay_job_has_the_same_record_a_result_and_progress_in_its_state(stack):
    result = qwen_image_edit.delay(prompt="Make it night", images=[stack.image_uri, stack.image_uri], seed=42)

    metas = []  # what r.state / r.info show, read in one go so state and info belong together

    def finished():
        metas.append(result.backend.get_task_meta(result.id))
        return metas[-1]["status"] in {"SUCCESS", "FAILURE"}

    wait_for(finished, 90, message="the result")
    value = result.get(timeout=10)

    progress = [meta["result"]["progress"] for meta in metas if meta["status"] == "PROGRESS"]
    # Seen while it ran, only ever growing; a first report may be 0 % (the graph started, no step done yet).
    assert progress and progress == sorted(progress) and all(0 <= p <= 100 for p in progress), metas

    record = stack.job(result.id)
    assert record["status"] == "succeeded" and record["workflow"] == "qwen-image-edit"
    assert record["params"]["prompt"] == "Make it night"
    assert value["job_id"] == result.id and value["status"] == "succeeded"
    assert value["outputs"] == [o["uri"] for o in record["outputs"]]
    assert_outputs_in_s3(stack, record)


def test_bad_request_is_refused_and_records_nothing(stack):
    before, _ = stack.services.jobs.list(status=None, limit=100)
    answer = stack.session.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": stack.image_uri, "move": "spin"}, timeout=10
    )
    assert answer.status_code == 422
    assert "move" in answer.json()["error"]["fields"]
    after, _ = stack.services.jobs.list(status=None, limit=100)
    assert [j.job_id for j in after] == [j.job_id for j in before]


def test_delay_with_bad_params_raises_and_records_nothing(stack):
    import pytest

    from gpuorch.errors import ParamsInvalid

    before, _ = stack.services.jobs.list(status=None, limit=100)
    with pytest.raises(ParamsInvalid) as refused:
        camera_angle.delay(image=stack.image_uri, move="rotate_left")  # a rotation needs degrees
    assert "degrees" in str(refused.value.errors)
    after, _ = stack.services.jobs.list(status=None, limit=100)
    assert len(after) == len(before)


def test_outputs_are_converted_on_the_gpu_host_and_carried_inline_when_asked(stack):
    answer = stack.session.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs",
        json={"image": stack.image_uri, "move": "close_up",
              "output": {"format": "webp", "quality": 60, "inline": True}},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    record = stack.wait_terminal(answer.json()["job_id"])

    assert record["status"] == "succeeded", record
    [output] = record["outputs"]
    data = s3_object(stack, output["uri"])
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert (output["content_type"], output["bytes"]) == ("image/webp", len(data))
    assert output["filename"].endswith(".webp") and output["uri"].endswith(".webp")
    assert base64.b64decode(output["inline_base64"]) == data
    assert stack.session.get(output["url"], timeout=10).content == data
