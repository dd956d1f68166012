"""`gpuorch submit|status|list|cancel` against a real API served on loopback over the moto server."""

from __future__ import annotations

import dataclasses
import json
import re
import threading

import requests

from gpuorch.jobs import states, watch
from webapp.context import EXTENSION

from tests.cli.conftest import serve
from tests.conftest import wait_for
from tests.webapp.images import encode
from tests.webapp.test_api_health import closed_port


def image(settings) -> str:
    return f"s3://{settings.bucket}/inputs/house.png"


def submit(gpuorch, api_settings, *extra: str):
    return gpuorch("submit", "camera-angle", "-p", "move=close_up", "-i", image(api_settings), *extra,
                   settings=api_settings)


def test_submit_prints_the_job_id_and_status_reads_it_back(gpuorch, served):
    api_settings, _, services = served
    result = submit(gpuorch, api_settings, "-p", "seed=7")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    record = services.jobs.get(job_id)
    assert record is not None, repr(result.output)
    assert re.search(r"^expected: \$[0-9.]+ on a running GPU, \$[0-9.]+ if one must start", result.stderr, re.M), \
        result.stderr
    assert (record.status, record.params["move"], record.params["seed"]) == ("queued", "close_up", 7)

    shown = gpuorch("status", job_id, settings=api_settings)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"job {job_id} (camera-angle): queued, 0%")
    # No lifecycle check has run: the GPU is a cold start away.
    assert re.search(r"^  where: waiting for gpu, starts in ~\d+ s, finishes in ~\d+ s \(by ", shown.stdout, re.M)
    assert "\n  expected: $" in shown.stdout and "actual" not in shown.stdout
    as_json = json.loads(gpuorch("status", job_id, "--json", settings=api_settings).stdout)
    assert (as_json["job_id"], as_json["status"]) == (job_id, "queued")


def test_a_local_image_file_is_sent_inline_and_stored(gpuorch, served, tmp_path):
    api_settings, _, services = served
    path = tmp_path / "house.png"
    path.write_bytes(encode("PNG"))
    result = gpuorch("submit", "qwen-image-edit", "-p", "prompt=Paint it blue", "-i", str(path), settings=api_settings)
    assert result.exit_code == 0, result.output
    record = services.jobs.get(result.stdout.strip())
    assert re.fullmatch(rf"s3://{api_settings.bucket}/inputs/.+\.png", record.params["images"][0])


def test_a_refused_submission_names_each_field_and_exits_1(gpuorch, served):
    api_settings, _, _ = served
    result = gpuorch("submit", "camera-angle", "-p", "move=somersault", "-p", "colour=red", settings=api_settings)
    assert result.exit_code == 1
    for field in ("image", "move", "colour"):
        assert re.search(rf"^  {field}: ", result.stderr, re.M), result.stderr


def move_once_followed(app, services, *moves):
    """Once the CLI follows the job's event stream, move the job through `moves` (each a function of its id)."""
    followed = app.extensions[EXTENSION].watch

    def act():
        wait_for(lambda: followed.following > 0, 20, message="the CLI to follow the job")
        [job_id] = [j for j in list(followed._followers)]
        for move in moves:
            reads = followed.reads
            move(job_id)
            wait_for(lambda: followed.reads >= reads + 2 or not followed.following, 10,
                     message="the watch to read it")

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_submit_wait_follows_the_job_s_events_until_it_succeeds(gpuorch, served):
    api_settings, app, services = served
    mover = move_once_followed(app, services, lambda j: services.jobs.transition(j, states.RUNNING),
                               lambda j: services.jobs.report_progress(j, 50, "13 KSampler"),
                               lambda j: services.jobs.transition(j, states.SUCCEEDED))
    result = submit(gpuorch, api_settings, "--wait")
    mover.join()
    assert result.exit_code == 0, result.output
    assert "succeeded, 100%" in result.stdout


def test_submit_wait_exits_1_when_the_job_is_cancelled(gpuorch, served):
    api_settings, app, services = served
    mover = move_once_followed(app, services, lambda j: services.jobs.transition(j, states.CANCELLED))
    result = submit(gpuorch, api_settings, "--wait")
    mover.join()
    assert result.exit_code == 1
    assert "cancelled" in result.stdout


def test_wait_and_events_print_the_job_s_end(gpuorch, served):
    api_settings, app, services = served
    job_id = submit(gpuorch, api_settings).stdout.strip()
    mover = move_once_followed(app, services, lambda j: services.jobs.transition(j, states.RUNNING),
                               lambda j: services.jobs.transition(j, states.FAILED, error="out of luck"))
    waited = gpuorch("wait", job_id, "--timeout", "30", settings=api_settings)
    mover.join()
    assert waited.exit_code == 1 and "failed" in waited.stdout and "out of luck" in waited.stdout
    assert re.search(r"^  actual: no GPU time; ended \d+ s sooner than estimated$", waited.stdout, re.M), waited.stdout
    assert "where:" not in waited.stdout
    streamed = gpuorch("events", job_id, "--json", settings=api_settings)
    assert streamed.exit_code == 1
    assert [json.loads(line)["event"] for line in streamed.stdout.splitlines()] == ["status", "end"]
    not_over = submit(gpuorch, api_settings).stdout.strip()
    timed_out = gpuorch("wait", not_over, "--timeout", "0.2", settings=api_settings)
    assert timed_out.exit_code == 1 and "queued" in timed_out.stdout


def test_list_filters_by_status_and_cancel_refuses_a_finished_job(gpuorch, served):
    api_settings, _, services = served
    first = submit(gpuorch, api_settings).stdout.strip()
    second = submit(gpuorch, api_settings).stdout.strip()

    cancelled = gpuorch("cancel", first, settings=api_settings)
    assert (cancelled.exit_code, cancelled.stdout) == (0, f"job {first}: cancelled\n")
    again = gpuorch("cancel", first, settings=api_settings)
    assert again.exit_code == 1 and "job_finished" in again.stderr

    queued = gpuorch("list", "--status", "queued", settings=api_settings)
    assert queued.exit_code == 0 and second in queued.stdout and first not in queued.stdout
    page = json.loads(gpuorch("list", "--limit", "1", "--json", settings=api_settings).stdout)
    assert [j["job_id"] for j in page["jobs"]] == [second] and page["next_cursor"]


def test_an_unknown_job_exits_1_with_the_api_message(gpuorch, served):
    api_settings, _, _ = served
    for command in ("status", "cancel"):
        result = gpuorch(command, "no-such-job", settings=api_settings)
        assert result.exit_code == 1
        assert "No job has the id 'no-such-job'" in result.stderr


def test_an_unreachable_api_exits_2(gpuorch, settings):
    down = dataclasses.replace(settings, api_base_url=f"http://127.0.0.1:{closed_port()}")
    for args in (("status", "x"), ("list",), ("cancel", "x"), ("submit", "camera-angle")):
        result = gpuorch(*args, settings=down)
        assert result.exit_code == 2, (args, result.output)
        assert "cannot reach the API" in result.stderr


def test_a_missing_image_file_is_a_usage_error(gpuorch, served):
    api_settings, _, _ = served
    result = gpuorch("submit", "camera-angle", "-i", "nowhere.png", settings=api_settings)
    assert result.exit_code == 2 and "neither a URI" in result.output


def test_without_a_key_the_cli_says_how_to_get_one_and_exits_1(gpuorch, served):
    api_settings, _, _ = served
    result = gpuorch("list", settings=dataclasses.replace(api_settings, api_key=""))
    assert result.exit_code == 1
    assert "GPUORCH_API_KEY" in result.stderr and "gpuorch keys create" in result.stderr


def test_a_revoked_key_exits_1_with_the_api_message(gpuorch, served):
    api_settings, _, _ = served
    revoked = gpuorch("keys", "revoke", api_settings.api_key.split("_")[1], settings=api_settings)
    assert revoked.exit_code == 0, revoked.output
    # The API has not used (so not cached) this key yet: the revocation is seen at once.
    result = gpuorch("list", settings=api_settings)
    assert result.exit_code == 1 and "invalid_key" in result.stderr


def test_submit_with_an_idempotency_key_twice_prints_the_same_job(gpuorch, served):
    api_settings, _, services = served
    first = submit(gpuorch, api_settings, "--idempotency-key", "batch-7/item-1")
    again = submit(gpuorch, api_settings, "--idempotency-key", "batch-7/item-1")
    other = gpuorch("submit", "camera-angle", "-p", "move=top_down", "-i", image(api_settings),
                    "--idempotency-key", "batch-7/item-1", settings=api_settings)

    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert again.stdout == first.stdout
    assert other.exit_code == 1
    assert "Idempotency-Key: already used for a different request" in other.stderr


def test_submit_asks_for_an_output_format(gpuorch, served):
    api_settings, _, services = served
    result = submit(gpuorch, api_settings, "--format", "webp", "--quality", "75", "--inline")
    assert result.exit_code == 0, result.output
    assert services.jobs.get(result.stdout.strip()).output == {"format": "webp", "quality": 75, "inline": True}

    refused = submit(gpuorch, api_settings, "--format", "png", "--quality", "75")
    assert refused.exit_code == 1
    assert "output.quality: only jpeg and webp take a quality" in refused.stderr


def test_submit_gives_a_priority_and_a_deadline(gpuorch, served):
    api_settings, _, services = served
    low = submit(gpuorch, api_settings, "--priority", "low", "--ttl-seconds", "600")
    assert low.exit_code == 0, low.output
    record = services.jobs.get(low.stdout.strip())
    assert record.priority == "low" and record.deadline is not None

    shown = gpuorch("status", record.job_id, settings=api_settings)
    assert "waiting: priority low: it starts no GPU by itself" in shown.stdout

    past = submit(gpuorch, api_settings, "--deadline", "2020-01-01T00:00:00Z")
    assert past.exit_code == 1 and "deadline: must be after now" in past.stderr


def test_submit_names_a_webhook_and_deliveries_lists_what_was_tried(gpuorch, served):
    api_settings, _, services = served
    job_id = submit(gpuorch, api_settings, "--webhook", "http://127.0.0.1:9/hook", "--webhook-event",
                    "job.succeeded").stdout.strip()
    assert services.jobs.get(job_id).webhook["events"] == ["job.succeeded"]
    listed = gpuorch("deliveries", job_id, settings=api_settings)
    assert listed.exit_code == 0 and "No webhook deliveries." in listed.stdout
    refused = gpuorch("resend", job_id, settings=api_settings)
    assert refused.exit_code == 1 and "delivery_not_found" in refused.stderr


def test_a_busy_api_process_is_asked_again_after_its_retry_after(gpuorch, settings, provisioned, monkeypatch):
    monkeypatch.setattr(watch, "RETRY_AFTER_S", 1.0)
    with serve(dataclasses.replace(settings, api_waiters=1), provisioned) as (api_settings, app, services):
        job_id = submit(gpuorch, api_settings).stdout.strip()
        # Another request holds the process's one waiting place for 2 s: the CLI's first wait is refused (503).
        holder = threading.Thread(target=lambda: requests.get(
            f"{api_settings.api_base_url}/api/v1/jobs/{job_id}", params={"wait": 2}, timeout=10,
            headers={"Authorization": f"Bearer {api_settings.api_key}"}), daemon=True)
        holder.start()
        wait_for(lambda: app.extensions[EXTENSION].watch.following == 1, 10, message="the holder to wait")
        waited = gpuorch("wait", job_id, "--timeout", "4", settings=api_settings)
        holder.join()
    assert waited.exit_code == 1 and "queued" in waited.stdout, waited.output  # not over: it waited, not refused
    assert "too_many_waiters" not in waited.output
