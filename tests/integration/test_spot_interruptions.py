"""Spot interruptions on the local stack, with real processes: a spot instance and its on-demand fallback on moto, each
played by a host agent with its own ComfyUI emulator and metadata service, where the test raises EC2's notice while
jobs run on spot.

Each test submits three jobs: the spot worker takes two (one executing in ComfyUI, one waiting behind it in
ComfyUI's queue) and the third waits in SQS. On the notice the worker takes no new job; the waiting one goes back at
once; the executing one goes back too when its time limit could outlast the interruption (a short notice), or
finishes on spot (a long one). The lifecycle starts the on-demand fallback, which runs what was given back; the
host agent stops the spot instance at the notice's time. No job is lost, none is executed twice in ComfyUI, each
has the attempts its path implies, and the cost report counts the interrupted run.
"""

from __future__ import annotations

import json

import pytest
import requests

from gpuorch_dev.emulator.__main__ import STATS_FILE
from tests.integration.conftest import key_session, wait_for
from tests.integration.test_lifecycle import gpu_lifecycle  # noqa: F401 - the fixture

# Time limit 20 s (visibility 70 s = 2 x 20 + 30, the worker's start-up rule): a job executing at a 6 s notice cannot
# surely end before it (20 s + the 10 s margin), while at a 40 s notice every one can.
SETTINGS = {
    "task_time_limit": 20, "visibility_timeout": 70, "comfyui_check_interval": 0.5,
    "interruption_check_seconds": 0.5, "idle_stop_seconds": 120, "warmup_workflow": "", "monitoring": False,
}
STEP_SECONDS = 0.5  # a camera-angle job: 8 sampler steps, about 5 s in the emulator (two in a row fit the limit)
SHORT_NOTICE_S, LONG_NOTICE_S = 6, 40


def comfyui(url: str, path: str) -> dict:
    return requests.get(f"{url}{path}", timeout=10).json()


def prompt_ids(entries: list) -> list[str]:
    """The prompt ids of ComfyUI's /queue entries ([number, prompt_id, graph, extra, outputs])."""
    return [entry[1] for entry in entries]


def interrupted_mid_job(notice_s: float, gpu_lifecycle) -> dict:  # noqa: F811
    gpu = gpu_lifecycle(markets=("spot", "on-demand"), step_seconds=STEP_SECONDS, **SETTINGS)
    spot, on_demand = gpu.agents
    spot_url = f"http://127.0.0.1:{gpu.comfyui[spot].port}"
    jobs = [gpu.submit(move) for move in ("top_down", "close_up", "wide_angle")]

    # The lifecycle prefers spot (moto's spot price is $0.00001/h); its worker takes two jobs into ComfyUI.
    def two_in_comfyui():
        if gpu.state(spot) != "running" or not gpu.agents[spot].processes:
            return None
        queue = comfyui(spot_url, "/queue")
        running, pending = prompt_ids(queue["queue_running"]), prompt_ids(queue["queue_pending"])
        return running and pending and (running[0], pending[0])

    executing, waiting = wait_for(two_in_comfyui, 120, interval=0.1, message="two jobs in the spot instance's ComfyUI")
    [queued] = [job for job in jobs if job not in (executing, waiting)]
    assert gpu.state(on_demand) == "stopped"

    notice = gpu.agents[spot].metadata.raise_notice(notice_s)

    records = {job: wait_for(lambda: (r := gpu.job(job))["status"] in ("succeeded", "failed") and r, 180,
                             message=f"job {job} to finish") for job in jobs}
    # The notice stopped the spot worker's consumer (Celery logs the cancel), so it took no new job.
    [spot_worker] = {p.log_path for p in gpu.processes.processes if p.name == f"gpu_worker-{spot}"}
    assert "Canceling queue" in spot_worker.read_text(errors="replace")
    # EC2 (the agent) stops the spot instance at the notice's time; its emulator leaves its figures behind.
    wait_for(lambda: gpu.state(spot) == "stopped", notice_s + 60, message="the spot instance to be stopped")
    stats_file = gpu.comfyui[spot].data_dir / STATS_FILE
    wait_for(stats_file.exists, 30, message="the spot emulator's final figures")
    return {
        "gpu": gpu, "spot": spot, "on_demand": on_demand, "notice": notice, "records": records,
        "executing": executing, "waiting": waiting, "queued": queued,
        "spot_prompts": json.loads(stats_file.read_text())["prompts"],
        "on_demand_prompts": comfyui(f"http://127.0.0.1:{gpu.comfyui[on_demand].port}", "/emulator/stats")["prompts"],
    }


def outcomes(seen: dict, job: str) -> list[str]:
    """How each execution of the job's prompt ended, on either instance."""
    return [*seen["spot_prompts"].get(job, {}).get("outcomes", []),
            *seen["on_demand_prompts"].get(job, {}).get("outcomes", [])]


def assert_nothing_lost_and_costs_counted(seen: dict) -> None:
    gpu = seen["gpu"]
    for job, record in seen["records"].items():
        assert record["status"] == "succeeded" and len(record["outputs"]) == 1, record
        assert outcomes(seen, job).count("succeeded") == 1, (job, outcomes(seen, job))  # executed once to its end
    aws = gpu.services.aws
    wait_for(lambda: all(aws.sqs.get_queue_attributes(
        QueueUrl=aws.queue_url(gpu.settings.gpu_queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"][key] == "0" for key in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")),
        30, message="every message to be acknowledged")
    dlq = aws.queue_url(gpu.settings.gpu_dead_letter_queue)
    assert not aws.sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages")

    # The lifecycle started the on-demand fallback, said why, and the cost report counts the interrupted run.
    operator = key_session(gpu.services, "ops", operator=True)
    costs = wait_for(lambda: (c := operator.get(f"{gpu.api_url}/api/v1/costs", timeout=10).json())["interruptions"]
                     and c, 30, message="the cost report to count the interruption")
    assert (costs["interruptions"], costs["starts"]) == (1, 2), costs
    market = requests.get(f"{gpu.api_url}/health", timeout=10).json()["components"]["gpu"]["detail"]["market"]
    assert market["last_start"]["instance_id"] == seen["on_demand"]
    assert (market["last_fallback"]["reason"], market["last_fallback"]["instead_of"]) == (
        "spot_interrupted", seen["spot"])


@pytest.mark.timeout(420)
def test_a_short_notice_gives_every_job_back_and_the_fallback_runs_them(gpu_lifecycle):  # noqa: F811
    seen = interrupted_mid_job(SHORT_NOTICE_S, gpu_lifecycle)

    records = seen["records"]
    # The executing job could not surely end in 6 s: interrupted in ComfyUI, given back, run again on on-demand.
    assert "interrupted" in seen["spot_prompts"][seen["executing"]]["outcomes"]
    assert records[seen["executing"]]["attempts"] == 2
    # The waiting one had started its task on spot (attempt 1): back at once, run on on-demand. (Its process decides
    # on its own: if the executing job was dropped first, ComfyUI may have begun this one meanwhile, and it is
    # interrupted in turn, never finished there.)
    assert "succeeded" not in seen["spot_prompts"].get(seen["waiting"], {}).get("outcomes", [])
    assert records[seen["waiting"]]["attempts"] == 2
    assert seen["on_demand_prompts"][seen["waiting"]]["outcomes"] == ["succeeded"]
    # The third was never taken by the interrupted worker.
    assert records[seen["queued"]]["attempts"] == 1 and outcomes(seen, seen["queued"]) == ["succeeded"]
    assert_nothing_lost_and_costs_counted(seen)


@pytest.mark.timeout(420)
def test_a_long_notice_lets_the_executing_job_finish_on_spot(gpu_lifecycle):  # noqa: F811
    seen = interrupted_mid_job(LONG_NOTICE_S, gpu_lifecycle)

    records = seen["records"]
    # The executing job ends well before the interruption: it finishes on spot, once.
    assert seen["spot_prompts"][seen["executing"]]["outcomes"] == ["succeeded"]
    assert records[seen["executing"]]["attempts"] == 1
    # Nothing else starts on spot after the notice: the waiting job goes back at once, the third never came.
    assert records[seen["waiting"]]["attempts"] == 2 and records[seen["queued"]]["attempts"] == 1
    assert seen["on_demand_prompts"][seen["waiting"]]["outcomes"] == ["succeeded"]
    assert_nothing_lost_and_costs_counted(seen)
