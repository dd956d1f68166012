"""ComfyClient's request/answer calls against the replay server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import pytest

from gpuorch.comfyui.client import HistoryEntry, OutputRef, QueueState
from gpuorch.comfyui.errors import ComfyProtocolError, ComfyRejected, ComfyUnavailable
from gpuorch.errors import RequestRefused, Unavailable

from .replay import load_trace, png

BASIC = load_trace("http-and-ws-basic")


def test_readiness_and_catalogue(replay, connect) -> None:
    client = connect(replay().url)
    assert client.system_stats()["system"]["comfyui_version"] == "0.8.0"
    catalogue = client.object_info()
    assert catalogue["KSampler"]["input"]["required"]["steps"][0] == "INT"


def test_uploads_use_the_name_the_server_returns(replay, connect) -> None:
    client = connect(replay().url)
    assert client.upload_image("probe_src.png", b"first") == "probe_src.png"
    assert client.upload_image("probe_src.png", b"first") == "probe_src.png"  # same bytes: same file
    assert client.upload_image("probe_src.png", b"other") == "probe_src (1).png"
    assert client.upload_image("probe_src.png", b"other", overwrite=True) == "probe_src.png"


def test_submit_answers_the_queue_number(replay, connect, runs) -> None:
    server = replay()
    client = connect(server.url)
    run = runs["valid"]
    assert client.submit(run.graph, prompt_id=run.prompt_id) == 0
    method, path, body = next(r for r in server.requests if r[1] == "/prompt")
    assert body == {"prompt": run.graph, "client_id": "worker-1", "prompt_id": run.prompt_id}


def test_invalid_graph_is_rejected_with_a_readable_reason(replay, connect) -> None:
    server = replay()
    recorded = BASIC["POST /prompt invalid: bad value (scale_by out of range, bad enum, missing file)"]
    server.add_rejection(recorded["request"]["prompt"], recorded)
    client = connect(server.url)
    with pytest.raises(ComfyRejected) as caught:
        client.submit(recorded["request"]["prompt"], prompt_id="job-1")
    assert "node 3 (ImageScaleBy) input 'scale_by': value_bigger_than_max: Value 100.0 bigger than max of 8.0" \
        in str(caught.value)
    assert caught.value.node_errors.keys() == {"1", "3"}
    assert isinstance(caught.value, RequestRefused) and not isinstance(caught.value, Unavailable)


def test_server_errors_are_retryable(replay, connect) -> None:
    client = connect(replay().url)
    with pytest.raises(ComfyUnavailable, match="500"):
        client.submit({"1": {"class_type": "Unrecorded", "inputs": {}}}, prompt_id="not-recorded")


def test_connection_refused_is_retryable(connect, closed_port) -> None:
    client = connect(f"http://127.0.0.1:{closed_port}")
    for call in (client.system_stats, client.queue, lambda: client.submit({}, prompt_id="p"),
                 lambda: client.upload_image("a.png", b"x")):
        with pytest.raises(ComfyUnavailable) as caught:
            call()
        assert isinstance(caught.value, Unavailable)


def test_an_answer_that_is_not_comfyui_is_a_protocol_error(connect, web_page_url) -> None:
    client = connect(web_page_url)
    for call in (client.system_stats, client.queue, lambda: client.history("p"),
                 lambda: client.submit({}, prompt_id="p"), lambda: client.upload_image("a.png", b"x")):
        with pytest.raises(ComfyProtocolError, match="not JSON"):
            call()


def test_a_wrong_path_is_rejected_not_retried(replay, connect) -> None:
    client = connect(replay().url + "/nothing-here")
    with pytest.raises(ComfyRejected, match="404"):
        client.system_stats()


def test_history_and_locate(replay, connect, runs) -> None:
    server = replay()
    server.set_queue(BASIC["GET /queue (busy, trimmed)"]["json"])
    valid = runs["valid"]
    server.set_history(valid.prompt_id, valid.history_entry)
    client = connect(server.url)
    assert client.queue() == QueueState(running=("8940a8d5-4969-40ad-8439-272db1f6d4aa",),
                                        pending=("6d957c34-7230-489a-a505-d0b672405e25",))
    assert client.locate("8940a8d5-4969-40ad-8439-272db1f6d4aa") == "running"
    assert client.locate("6d957c34-7230-489a-a505-d0b672405e25") == "pending"
    assert client.locate(valid.prompt_id) == "done"
    assert client.locate("never-submitted") is None
    assert client.history("never-submitted") is None
    entry = client.history(valid.prompt_id)
    assert isinstance(entry, HistoryEntry) and entry.succeeded


def test_locate_reads_the_queue_before_the_history(replay, connect) -> None:
    server = replay()
    client = connect(server.url)
    client.locate("some-job")
    assert [p for p in server.paths("GET")] == ["/queue", "/history/some-job"]


def test_view_downloads_outputs(replay, connect, runs) -> None:
    server = replay()
    client = connect(server.url)
    assert client.view(OutputRef("4", "probe_00002_.png", "", "output", "images")) == png()
    with pytest.raises(ComfyRejected, match="404"):
        client.view(OutputRef("4", "gone.png", "", "output", "images"))


def test_interrupt_and_delete_pending_send_what_comfyui_expects(replay, connect) -> None:
    server = replay()
    server.set_queue(BASIC["GET /queue (busy, trimmed)"]["json"])
    client = connect(server.url)
    client.interrupt("job-1")
    client.interrupt()
    client.delete_pending(["6d957c34-7230-489a-a505-d0b672405e25"])
    assert [(m, p, b) for m, p, b in server.requests] == [
        ("POST", "/interrupt", {"prompt_id": "job-1"}),
        ("POST", "/interrupt", {}),
        ("POST", "/queue", {"delete": ["6d957c34-7230-489a-a505-d0b672405e25"]}),
    ]
    assert client.locate("6d957c34-7230-489a-a505-d0b672405e25") is None


def test_api_prefixed_base_url_works(replay, connect) -> None:
    client = connect(replay().url + "/api")
    assert client.queue() == QueueState((), ())
