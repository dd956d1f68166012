"""ComfyClient.wait against the replay server: websocket progress, drops, polling, failures, deadlines."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from gpuorch.comfyui.client import OutputRef, RunResult
from gpuorch.comfyui.errors import (
    ComfyExecutionError,
    ComfyInterrupted,
    ComfyPromptLost,
    ComfyTimeout,
    ComfyUnavailable,
)
from gpuorch.comfyui.progress import Progress, ProgressTracker
from gpuorch.errors import Unavailable

from .conftest import FAST
from .replay import Behaviour

UPSCALE_OUTPUT = OutputRef("6", "ComfyUI_temp_zyqvp_00001_.png", "", "temp", "images")
VALID_OUTPUT = OutputRef("4", "probe_00002_.png", "", "output", "images")


def _percents(updates: list[Progress]) -> list[int]:
    return [p.percent for p in updates]


def test_progress_follows_the_websocket_and_completion_needs_no_polling(replay, connect, runs) -> None:
    server = replay(Behaviour(frame_delay=0.003))  # a run that lasts, as real ones do
    # A periodic history check that never comes during the test: only the final frame can end it.
    client = connect(server.url, poll=replace(FAST, check_interval=60.0))
    run = runs["upscale"]
    client.submit(run.graph, prompt_id=run.prompt_id)
    updates: list[Progress] = []
    result = client.wait(run.prompt_id, timeout=10, graph=run.graph, on_progress=updates.append)
    assert result == RunResult(run.prompt_id, (UPSCALE_OUTPUT,))
    assert _percents(updates) == sorted(_percents(updates)) and updates[-1].percent == 100
    assert len(set(_percents(updates))) > 5
    assert [(p.step, p.steps) for p in updates if p.node_id == "4" and p.step][-1] == (20, 20)
    assert server.ws_connections == 1
    # One look right after connecting (frames may predate the socket), one after the final frame.
    assert server.paths("GET").count("/queue") == 2
    assert client.view(result.outputs[0])


def test_binary_preview_frames_are_ignored(replay, connect, runs) -> None:
    server = replay(Behaviour(binary_every=2))
    client = connect(server.url)
    run = runs["valid"]
    client.submit(run.graph, prompt_id=run.prompt_id)
    updates: list[Progress] = []
    result = client.wait(run.prompt_id, timeout=10, graph=run.graph, on_progress=updates.append)
    assert result.outputs == (VALID_OUTPUT,)
    assert updates[-1].percent == 100


def test_a_dropped_socket_is_reconnected_and_progress_resumes(replay, connect, runs) -> None:
    server = replay(Behaviour(drop_after=20, frame_delay=0.003))
    client = connect(server.url)
    run = runs["upscale"]
    client.submit(run.graph, prompt_id=run.prompt_id)
    updates: list[Progress] = []
    result = client.wait(run.prompt_id, timeout=10, graph=run.graph, on_progress=updates.append)
    assert result.outputs == (UPSCALE_OUTPUT,)
    assert server.ws_connections == 2
    assert _percents(updates) == sorted(_percents(updates)) and updates[-1].percent == 100
    # Ticks of node 4 past the drop arrived on the second socket.
    assert (20, 20) in [(p.step, p.steps) for p in updates]


def test_a_dropped_socket_that_cannot_reconnect_falls_back_to_polling(replay, connect, runs) -> None:
    server = replay(Behaviour(drop_after=20, refuse_ws_after_drop=True, frame_delay=0.005))
    client = connect(server.url)
    run = runs["upscale"]
    client.submit(run.graph, prompt_id=run.prompt_id)
    updates: list[Progress] = []
    result = client.wait(run.prompt_id, timeout=10, graph=run.graph, on_progress=updates.append)
    assert result.outputs == (UPSCALE_OUTPUT,)
    assert server.ws_connections >= 2  # reconnection attempts were refused
    assert server.paths("GET").count("/queue") >= 3  # polled while the run went on
    assert updates[-1].percent == 100
    assert _percents(updates) == sorted(_percents(updates))


def test_runtime_error_arrives_on_the_websocket(replay, connect, runs) -> None:
    server = replay()
    client = connect(server.url)
    run = runs["runtime_error"]
    client.submit(run.graph, prompt_id=run.prompt_id)
    with pytest.raises(ComfyExecutionError) as caught:
        client.wait(run.prompt_id, timeout=10, graph=run.graph)
    error = caught.value
    assert (error.prompt_id, error.node_id, error.node_type, error.exception_type) == (
        run.prompt_id, "1", "LoadImage", "PIL.UnidentifiedImageError")
    assert "cannot identify image file" in str(error)


def test_runtime_error_found_by_polling_when_there_is_no_websocket(replay, connect, runs) -> None:
    server = replay(Behaviour(refuse_ws=True))
    client = connect(server.url)
    run = runs["runtime_error"]
    client.submit(run.graph, prompt_id=run.prompt_id)
    with pytest.raises(ComfyExecutionError) as caught:
        client.wait(run.prompt_id, timeout=10)
    assert (caught.value.node_id, caught.value.exception_type) == ("1", "PIL.UnidentifiedImageError")
    assert caught.value.traceback


def test_interrupt_stops_the_wait(replay, connect, runs) -> None:
    server = replay(Behaviour(hold_before="execution_interrupted"))
    run = runs["interrupted"]
    waiter, controller = connect(server.url), connect(server.url, client_id="operator")
    waiter.submit(run.graph, prompt_id=run.prompt_id)
    reached_node_4 = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.node_id == "4":
            reached_node_4.set()

    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(waiter.wait, run.prompt_id, timeout=10, graph=run.graph, on_progress=on_progress)
        assert reached_node_4.wait(timeout=5)
        assert not waiting.done()
        controller.interrupt(run.prompt_id)
        with pytest.raises(ComfyInterrupted) as caught:
            waiting.result(timeout=5)
    assert (caught.value.node_id, caught.value.node_type) == ("4", "ImageScale")


def test_the_deadline_raises_a_timeout(replay, connect, runs) -> None:
    server = replay(Behaviour(hold_before="execution_interrupted"))
    client = connect(server.url)
    run = runs["interrupted"]
    client.submit(run.graph, prompt_id=run.prompt_id)
    started = time.monotonic()
    with pytest.raises(ComfyTimeout) as caught:
        client.wait(run.prompt_id, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 2.0
    assert caught.value.prompt_id == run.prompt_id
    assert client.locate(run.prompt_id) == "running"


def test_a_prompt_comfyui_does_not_know_is_lost(replay, connect) -> None:
    client = connect(replay().url)
    with pytest.raises(ComfyPromptLost) as caught:
        client.wait("job-never-submitted", timeout=10)
    assert isinstance(caught.value, Unavailable)  # worth retrying: submitted again


def test_unreachable_comfyui_gives_up_after_the_grace(connect, closed_port) -> None:
    client = connect(f"http://127.0.0.1:{closed_port}")
    started = time.monotonic()
    with pytest.raises(ComfyUnavailable) as caught:
        client.wait("job-1", timeout=10)
    assert type(caught.value) is ComfyUnavailable
    assert time.monotonic() - started < 3.0


def test_a_prompt_that_already_finished_is_collected_at_once(replay, connect, runs) -> None:
    server = replay()
    run = runs["cached"]
    server.set_history(run.prompt_id, run.history_entry)  # finished before this worker looked
    client = connect(server.url)
    assert client.locate(run.prompt_id) == "done"
    updates: list[Progress] = []
    result = client.wait(run.prompt_id, timeout=10, on_progress=updates.append)
    assert result.outputs == (VALID_OUTPUT,)
    assert updates == [Progress(percent=100)]


def test_a_redelivered_job_follows_a_prompt_another_worker_submitted(replay, connect, runs) -> None:
    # The first worker died after submitting; its events go to a socket that no longer exists,
    # so the new worker's socket stays silent and the periodic history check must find the end.
    server = replay(Behaviour(start_on_submit=True, frame_delay=0.01))
    run = runs["valid"]
    connect(server.url, client_id="worker-that-died").submit(run.graph, prompt_id=run.prompt_id)
    client = connect(server.url, client_id="worker-2")
    assert client.locate(run.prompt_id) in ("pending", "running", "done")
    result = client.wait(run.prompt_id, timeout=10, graph=run.graph)
    assert result.outputs == (VALID_OUTPUT,)


def test_a_custom_tracker_can_replace_the_graph(replay, connect, runs) -> None:
    server = replay(Behaviour(frame_delay=0.003))
    client = connect(server.url)
    run = runs["upscale"]
    client.submit(run.graph, prompt_id=run.prompt_id)
    tracker = ProgressTracker(run.graph, output_nodes=["6"])
    updates: list[Progress] = []
    client.wait(run.prompt_id, timeout=10, tracker=tracker, on_progress=updates.append)
    assert updates[-1] == tracker.progress == Progress(percent=100)
    with pytest.raises(ValueError):
        client.wait(run.prompt_id, timeout=1, graph=run.graph, tracker=tracker)


def test_an_exception_raised_in_the_progress_callback_reaches_the_caller(replay, connect, runs) -> None:
    # A task's soft time limit is raised wherever the waiting thread is, the callback included: it must
    # stop the wait, not be swallowed (the caller's callback guards its own errors).
    server = replay()
    client = connect(server.url)
    run = runs["valid"]
    client.submit(run.graph, prompt_id=run.prompt_id)

    class SoftTimeLimit(Exception):
        pass

    def interrupted(progress: Progress) -> None:
        raise SoftTimeLimit()

    with pytest.raises(SoftTimeLimit):
        client.wait(run.prompt_id, timeout=10, graph=run.graph, on_progress=interrupted)
