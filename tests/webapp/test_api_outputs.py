"""Job outputs answered with presigned download URLs: signed per answer, fetched over HTTP, expiring as set."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from gpuorch.celery.app import create_celery_app
from gpuorch.clock import utc_now
from tests.webapp.images import encode
from tests.webapp.conftest import keyed
from webapp import create_app
from gpuorch.jobs.outputs import expiry

PNG = encode("PNG")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def signed_until(url: str) -> datetime:
    """When S3 stops honouring a SigV4 presigned URL: its signing time plus its lifetime."""
    query = parse_qs(urlsplit(url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return signed + timedelta(seconds=int(query["X-Amz-Expires"][0]))


def succeeded_job(services, settings, job_id: str, files: dict[str, bytes]) -> list[dict]:
    """A job record that succeeded with these files stored under results/{job_id}/, as the GPU worker leaves it."""
    outputs = []
    for filename, data in files.items():
        key = f"results/{job_id}/{filename}"
        services.aws.s3.put_object(Bucket=settings.bucket, Key=key, Body=data, ContentType="image/png")
        outputs.append({
            "uri": f"s3://{settings.bucket}/{key}", "filename": filename, "node_id": "9", "media": "images",
            "content_type": "image/png", "bytes": len(data),
        })
    services.jobs.create(job_id, "camera-angle", {"image": "s3://b/k.png", "move": "close_up"}, source="api", owner="alice")
    services.jobs.transition(job_id, "running")
    services.jobs.transition(job_id, "succeeded", outputs=outputs)
    return outputs


def client_for(settings, key: str, **changes):
    changed = dataclasses.replace(settings, **changes)
    celery_app = create_celery_app(changed)
    return keyed(create_app(changed, celery_app=celery_app).test_client(), key), celery_app


def test_each_output_has_a_url_that_fetches_its_bytes_over_http(client, provisioned, settings):
    other = encode("PNG", (5, 5))
    outputs = succeeded_job(provisioned, settings, "job-a", {"out 1.png": PNG, "out+2.png": other})

    answer = client.get("/api/v1/jobs/job-a")

    assert answer.status_code == 200
    listed = answer.json["outputs"]
    assert [{k: v for k, v in o.items() if k not in {"url", "url_expires_at"}} for o in listed] == outputs
    for output, data in zip(listed, (PNG, other)):
        fetched = requests.get(output["url"], timeout=10)
        assert fetched.status_code == 200
        assert fetched.content == data


@pytest.mark.parametrize("seconds", [60, 3600, 604800])
def test_the_expiry_follows_the_setting(provisioned, settings, api_key, seconds):
    succeeded_job(provisioned, settings, "job-c", {"out.png": PNG})
    client, celery_app = client_for(settings, api_key, output_url_seconds=seconds)

    before = utc_now()
    output = client.get("/api/v1/jobs/job-c").json["outputs"][0]
    after = utc_now()

    expires_at = parse_stamp(output["url_expires_at"])
    assert parse_qs(urlsplit(output["url"]).query)["X-Amz-Expires"] == [str(seconds)]
    lifetime = timedelta(seconds=seconds)
    assert before.replace(microsecond=0) + lifetime <= expires_at <= after + lifetime
    # Never later than the signature allows.
    assert expires_at <= signed_until(output["url"])
    assert requests.get(output["url"], timeout=10).content == PNG
    celery_app.close()


def test_urls_are_signed_per_answer_and_never_stored(client, provisioned, settings):
    succeeded_job(provisioned, settings, "job-d", {"out.png": PNG})

    client.get("/api/v1/jobs/job-d")

    stored = provisioned.jobs.get("job-d").outputs[0]
    assert set(stored) == {"uri", "filename", "node_id", "media", "content_type", "bytes"}


def test_the_listing_carries_urls_too(client, provisioned, settings):
    succeeded_job(provisioned, settings, "job-e", {"out.png": PNG})

    [job] = client.get("/api/v1/jobs?status=succeeded").json["jobs"]

    assert requests.get(job["outputs"][0]["url"], timeout=10).content == PNG
    assert job["outputs"][0]["url_expires_at"]


@pytest.mark.parametrize(
    ("signed_at", "seconds", "until"),
    [
        (datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc), 3600,
         datetime(2026, 1, 1, 13, 0, 0, tzinfo=timezone.utc)),
        (datetime(2026, 1, 1, 12, 0, 0, 999_999, tzinfo=timezone.utc), 60,
         datetime(2026, 1, 1, 12, 1, 0, tzinfo=timezone.utc)),
        (datetime(2026, 12, 31, 23, 59, 59, 1, tzinfo=timezone.utc), 1, datetime(2027, 1, 1, tzinfo=timezone.utc)),
    ],
)
def test_expiry_counts_from_the_whole_second_the_signature_carries(signed_at, seconds, until):
    assert expiry(signed_at, seconds) == until
