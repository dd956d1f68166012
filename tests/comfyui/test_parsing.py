"""Parsing ComfyUI's answers (recorded bodies) into the client's frozen shapes, and error messages."""

from __future__ import annotations

import pytest

from gpuorch.comfyui.client import (
    Failure,
    HistoryEntry,
    OutputRef,
    QueueState,
    execution_seconds,
    parse_history,
    parse_queue,
)
from gpuorch.comfyui.errors import (
    ComfyError,
    ComfyExecutionError,
    ComfyInterrupted,
    ComfyPromptLost,
    ComfyProtocolError,
    ComfyRejected,
    ComfyTimeout,
    ComfyUnavailable,
)
from gpuorch.errors import GpuorchError, RequestRefused, Unavailable

from .replay import load_trace

BASIC = load_trace("http-and-ws-basic")


def test_successful_history() -> None:
    body = BASIC["GET /history/{id} (valid run)"]["json"]
    assert parse_history("57e37605-6af7-4f38-827c-f7619333af1e", body) == HistoryEntry(
        prompt_id="57e37605-6af7-4f38-827c-f7619333af1e",
        status_str="success",
        completed=True,
        outputs=(OutputRef("4", "probe_00002_.png", "", "output", "images"),),
        failure=None,
        execution_s=0.008,  # execution_start at ...281 ms, execution_success at ...289 ms
    )


@pytest.mark.parametrize("messages,seconds", [
    ([["execution_start", {"timestamp": 1000}], ["execution_success", {"timestamp": 3500}]], 2.5),
    ([["execution_start", {"timestamp": 1000}]], 0.0),
    ([["execution_success", {"timestamp": 3500}]], None),  # never started here
    ([["execution_start", {}], ["execution_success", {"timestamp": 3500}]], None),
    ([["execution_start", {"timestamp": 4000}], ["execution_success", {"timestamp": 3500}]], None),
    ([], None),
])
def test_execution_seconds(messages, seconds) -> None:
    assert execution_seconds(messages) == seconds


def test_runtime_error_history() -> None:
    entry = parse_history("7f6c403f-424c-4709-8bc4-b22235baf357", BASIC["GET /history/{id} (runtime error)"]["json"])
    assert entry is not None and not entry.succeeded
    assert (entry.status_str, entry.completed, entry.outputs) == ("error", False, ())
    failure = entry.failure
    assert (failure.kind, failure.node_id, failure.node_type, failure.exception_type) == (
        "error", "1", "LoadImage", "PIL.UnidentifiedImageError")
    assert "cannot identify image file" in failure.exception_message
    assert failure.traceback and "execution.py" in failure.traceback[0]


def test_interrupted_history() -> None:
    entry = parse_history("8940a8d5-4969-40ad-8439-272db1f6d4aa", BASIC["GET /history/{id} (interrupted)"]["json"])
    assert entry is not None
    assert entry.failure == Failure(kind="interrupted", node_id="4", node_type="ImageScale")


@pytest.mark.parametrize("key", ["GET /history/{id} before completion", "GET /history/unknown-id",
                                 "GET /history/{deleted pending id}"])
def test_empty_history_means_no_entry(key: str) -> None:
    assert parse_history("anything", BASIC[key]["json"]) is None


def test_every_file_of_every_output_key_is_listed() -> None:
    body = {"p": {"outputs": {
        "9": {"images": [{"filename": "a.png", "subfolder": "s", "type": "output"}],
              "animated": [True], "text": ["caption"]},
        "12": {"gifs": [{"filename": "b.webp", "subfolder": "", "type": "output", "format": "image/webp"}],
               "videos": [{"filename": "c.mp4", "type": "output"}]},
        "13": {"images": [{"filename": "d.png", "type": "temp"}, {"filename": "e.png", "type": "temp"}]},
    }, "status": {"status_str": "success", "completed": True, "messages": []}}}
    entry = parse_history("p", body)
    assert entry is not None and entry.outputs == (
        OutputRef("9", "a.png", "s", "output", "images"),
        OutputRef("12", "b.webp", "", "output", "gifs"),
        OutputRef("12", "c.mp4", "", "output", "videos"),
        OutputRef("13", "d.png", "", "temp", "images"),
        OutputRef("13", "e.png", "", "temp", "images"),
    )


@pytest.mark.parametrize("body", [[], "nope", None])
def test_history_that_is_not_an_object_is_a_protocol_error(body: object) -> None:
    with pytest.raises(ComfyProtocolError):
        parse_history("p", body)


def test_queue() -> None:
    assert parse_queue(BASIC["GET /queue (busy, trimmed)"]["json"]) == QueueState(
        running=("8940a8d5-4969-40ad-8439-272db1f6d4aa",), pending=("6d957c34-7230-489a-a505-d0b672405e25",))
    assert parse_queue(BASIC["GET /queue (idle)"]["json"]) == QueueState((), ())


@pytest.mark.parametrize(
    ("key", "lines"),
    [
        ("POST /prompt invalid: unknown class_type",
         ["ComfyUI rejected the prompt: invalid_prompt: Cannot execute because node NoSuchNode does not exist. "
          "(Node ID '#1')"]),
        ("POST /prompt invalid: missing required input",
         ["ComfyUI rejected the prompt: prompt_outputs_failed_validation: Prompt outputs failed validation",
          "node 2 (ImageInvert) input 'image': required_input_missing: Required input is missing"]),
        ("POST /prompt invalid: bad value (scale_by out of range, bad enum, missing file)",
         ["ComfyUI rejected the prompt: prompt_outputs_failed_validation: Prompt outputs failed validation",
          "node 1 (LoadImage) input 'image': custom_validation_failed: Custom validation failed for node "
          "(image - Invalid image file: does_not_exist.png)",
          "node 3 (ImageScaleBy) input 'scale_by': value_bigger_than_max: Value 100.0 bigger than max of 8.0",
          "node 3 (ImageScaleBy) input 'upscale_method': value_not_in_list: Value not in list "
          "(upscale_method: 'bogus' not in ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'])"]),
        ("POST /prompt invalid: link to missing node",
         ["ComfyUI rejected the prompt: prompt_outputs_failed_validation: Prompt outputs failed validation "
          "(Exception when validating node: '99')",
          "node 4 (SaveImage): exception_during_validation: Exception when validating node ('99')"]),
        ("POST /prompt invalid: no output node",
         ["ComfyUI rejected the prompt: prompt_no_outputs: Prompt has no outputs"]),
        ("POST /prompt invalid: no prompt key", ["ComfyUI rejected the prompt: no_prompt: No prompt provided"]),
    ],
)
def test_rejection_messages_name_each_problem(key: str, lines: list[str]) -> None:
    answer = BASIC[key]
    error = ComfyRejected.from_answer(answer["json"], status_code=answer["status"])
    assert str(error).split("\n  ") == lines
    assert error.status_code == 400
    assert error.error["type"] == answer["json"]["error"]["type"]
    assert len(error.problems) == len(lines) - 1


def test_rejection_problems_are_structured() -> None:
    answer = BASIC["POST /prompt invalid: bad value (scale_by out of range, bad enum, missing file)"]["json"]
    problems = ComfyRejected.from_answer(answer, status_code=400).problems
    assert [(p.node_id, p.class_type, p.input_name, p.type) for p in problems] == [
        ("1", "LoadImage", "image", "custom_validation_failed"),
        ("3", "ImageScaleBy", "scale_by", "value_bigger_than_max"),
        ("3", "ImageScaleBy", "upscale_method", "value_not_in_list"),
    ]


@pytest.mark.parametrize(
    ("failure", "expected_type", "text"),
    [
        (Failure("error", "1", "LoadImage", "PIL.UnidentifiedImageError", "cannot identify image file\n"),
         ComfyExecutionError,
         "prompt p failed in node 1 (LoadImage): PIL.UnidentifiedImageError: cannot identify image file"),
        (Failure("error"), ComfyExecutionError, "prompt p failed in an unknown node: error: no message"),
        (Failure("interrupted", "4", "ImageScale"), ComfyInterrupted,
         "prompt p was interrupted at node 4 (ImageScale)"),
        (Failure("interrupted"), ComfyInterrupted, "prompt p was interrupted"),
    ],
)
def test_failures_become_exceptions(failure: Failure, expected_type: type, text: str) -> None:
    error = failure.to_exception("p")
    assert type(error) is expected_type
    assert str(error) == text


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (ComfyUnavailable("down"), True),
        (ComfyPromptLost("p"), True),
        (ComfyRejected("no"), False),
        (ComfyProtocolError("odd"), False),
        (ComfyExecutionError("p", node_id="1", node_type="X", exception_type="E", exception_message="m"), False),
        (ComfyInterrupted("p"), False),
        (ComfyTimeout("p", 5), False),
    ],
)
def test_errors_say_whether_to_retry(error: ComfyError, unavailable: bool) -> None:
    """Only an unavailable ComfyUI is worth retrying as is; a refusal is a refused request."""
    assert isinstance(error, ComfyError) and isinstance(error, GpuorchError)
    assert isinstance(error, Unavailable) is unavailable
    assert isinstance(error, RequestRefused) is isinstance(error, ComfyRejected)
