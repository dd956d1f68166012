"""Metrics and health on real processes: after jobs, the API (2 gunicorn workers), the GPU worker and the control
worker each count them on /metrics, and /health shows the running GPU with fresh worker and ComfyUI heartbeats."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from gpuorch_dev.local.stack import free_port
from tests.integration.conftest import key_session, wait_for
from tests.integration.test_lifecycle import gpu_lifecycle  # noqa: F401 - the fixture


def scrape(url: str, session: requests.Session | None = None) -> dict[tuple[str, frozenset], float]:
    answer = (session or requests).get(url, timeout=10)
    answer.raise_for_status()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def scrape_when_up(url: str) -> dict:
    def up():
        try:
            return scrape(url)
        except requests.ConnectionError:
            return None

    return wait_for(up, 60, interval=0.2, message=f"{url} to answer")


def test_jobs_are_counted_by_every_process_and_health_shows_the_gpu(gpu_lifecycle):  # noqa: F811
    gpu_port, control_port = free_port(), free_port()
    gpu = gpu_lifecycle(gpu_metrics_port=gpu_port, control_metrics_port=control_port)
    [instance_id] = gpu.agents

    jobs = [gpu.submit(move) for move in ("top_down", "close_up", "wide_angle")]
    for job_id in jobs:
        record = wait_for(lambda: (r := gpu.job(job_id))["status"] in ("succeeded", "failed") and r, 120,
                          message=f"job {job_id} to finish")
        assert record["status"] == "succeeded", record

    # The API: whichever of its two gunicorn workers answers a scrape, it counts every submission.
    accepted = ("gpuorch_api_submissions_total", frozenset({("workflow", "camera-angle"), ("outcome", "accepted")}))
    prometheus = key_session(gpu.services, "prometheus", operator=True)  # the API's /metrics needs an operator key
    for _ in range(4):
        assert scrape(f"{gpu.api_url}/metrics", prometheus)[accepted] == len(jobs)

    # The GPU worker: its pool's children ran the jobs; its main process sums their figures.
    figures = scrape_when_up(f"http://127.0.0.1:{gpu_port}/metrics")
    camera = frozenset({("workflow", "camera-angle")})
    assert figures[("gpuorch_job_duration_seconds_count", camera | {("outcome", "succeeded")})] == len(jobs)
    assert figures[("gpuorch_job_queue_wait_seconds_count", camera)] == len(jobs)
    assert figures[("gpuorch_gpu_busy_seconds_total", camera)] > 0
    assert 0 < figures[("gpuorch_gpu_busy_share", frozenset())] <= 1

    # The control worker: the check that started the GPU for the first job.
    lifecycle = scrape_when_up(f"http://127.0.0.1:{control_port}/metrics")
    assert lifecycle[("gpuorch_gpu_starts_total", frozenset({("market", "on-demand")}))] == 1
    assert lifecycle[("gpuorch_gpu_instances", frozenset({("state", "running")}))] == 1
    assert lifecycle[("gpuorch_gpu_month_spend_dollars", frozenset())] >= 0

    # /health: the running instance, its worker's and its ComfyUI's heartbeats fresh.
    def host():
        component = requests.get(f"{gpu.api_url}/health", timeout=10).json()["components"]["gpu_instances"]
        found = [h for h in component["detail"]["instances"] if h["instance_id"] == instance_id]
        return found and found[0]["health"] == "ok" and (component, found[0])

    component, seen = wait_for(host, 30, interval=0.2, message="/health to show the GPU instance as ok")
    assert component["status"] == "ok"
    assert seen["state"] == "running"
    limit = component["detail"]["stale_after_s"]
    assert seen["worker"]["ready"] and seen["worker"]["age_s"] <= limit
    assert seen["comfyui"]["age_s"] <= limit
