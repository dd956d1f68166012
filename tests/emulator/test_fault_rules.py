"""Table-driven tests of the fault rules: body validation, where a fault fires, which requests an outage refuses."""

from __future__ import annotations

import pytest

from gpuorch_dev.emulator.executor import _full_type_name
from gpuorch_dev.emulator.faults import (
    FaultSpec,
    FaultSpecError,
    Outage,
    admit,
    expire,
    fires_at,
    injected_exception,
    outage_for,
    parse_fault,
)
from gpuorch_dev.emulator.meter import BusyMeter

CLASSES = {"KSampler", "VAEDecode", "SaveImage"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "hang"}, FaultSpec("hang", "in_prompt")),
        (
            {"kind": "hang", "at_node_class": "KSampler", "at_step": 2, "prompt_id": None, "times": 1},
            FaultSpec("hang", "in_prompt", at_node_class="KSampler", at_step=2),
        ),
        (
            {"kind": "hang", "prompt_id": "p1", "times": None},
            FaultSpec("hang", "in_prompt", prompt_id="p1", times=None),
        ),
        (
            {"kind": "execution_error", "at_node_id": "12"},
            FaultSpec(
                "execution_error",
                "in_prompt",
                at_node_id="12",
                exception_type="RuntimeError",
                exception_message="fault injected by the ComfyUI emulator",
            ),
        ),
        (
            {"kind": "execution_error", "exception_type": "torch.OutOfMemoryError", "exception_message": ""},
            FaultSpec("execution_error", "in_prompt", exception_type="torch.OutOfMemoryError", exception_message=""),
        ),
        ({"kind": "drop_websockets"}, FaultSpec("drop_websockets", "now", refuse_with="close", abrupt=False)),
        (
            {"kind": "drop_websockets", "for_requests": 2, "refuse_with": "503", "abrupt": True},
            FaultSpec("drop_websockets", "now", for_requests=2, refuse_with="503", abrupt=True),
        ),
        (
            {"kind": "drop_websockets", "at_node_class": "KSampler"},
            FaultSpec("drop_websockets", "in_prompt", at_node_class="KSampler", refuse_with="close", abrupt=False),
        ),
        ({"kind": "restart"}, FaultSpec("restart", "now", refuse_with="close")),
        ({"kind": "restart", "for_s": 2}, FaultSpec("restart", "now", for_s=2.0, refuse_with="close")),
        ({"kind": "restart", "when": "in_prompt"}, FaultSpec("restart", "in_prompt", refuse_with="close")),
        ({"kind": "unavailable", "for_s": 0.5}, FaultSpec("unavailable", "now", for_s=0.5, refuse_with="503")),
        (
            {"kind": "unavailable", "for_requests": 3, "refuse_with": "close", "at_step": 1},
            FaultSpec("unavailable", "in_prompt", at_step=1, for_requests=3, refuse_with="close"),
        ),
    ],
)
def test_valid_faults(body, expected):
    assert parse_fault(body, CLASSES) == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], None),
        ("hang", None),
        ({}, "kind"),
        ({"kind": "explode"}, "kind"),
        ({"kind": "hang", "colour": "red"}, "colour"),
        ({"kind": "hang", "for_s": 1}, "for_s"),
        ({"kind": "hang", "exception_type": "X"}, "exception_type"),
        ({"kind": "restart", "abrupt": True}, "abrupt"),
        ({"kind": "hang", "at_step": 0}, "at_step"),
        ({"kind": "hang", "at_step": "2"}, "at_step"),
        ({"kind": "hang", "at_step": True}, "at_step"),
        ({"kind": "hang", "at_step": 1.5}, "at_step"),
        ({"kind": "hang", "times": 0}, "times"),
        ({"kind": "hang", "prompt_id": ""}, "prompt_id"),
        ({"kind": "hang", "at_node_id": 12}, "at_node_id"),
        ({"kind": "hang", "at_node_class": "KSampeler"}, "at_node_class"),
        ({"kind": "hang", "when": "now"}, "when"),
        ({"kind": "execution_error", "when": "now"}, "when"),
        ({"kind": "restart", "when": "later"}, "when"),
        ({"kind": "restart", "when": "now", "at_node_class": "KSampler"}, "at_node_class"),
        ({"kind": "restart", "times": 2}, "times"),
        ({"kind": "drop_websockets", "times": None}, "times"),
        ({"kind": "unavailable"}, "for_s"),
        ({"kind": "unavailable", "for_s": 0}, "for_s"),
        ({"kind": "unavailable", "for_s": -1}, "for_s"),
        ({"kind": "unavailable", "for_s": float("inf")}, "for_s"),
        ({"kind": "unavailable", "for_s": "5"}, "for_s"),
        ({"kind": "unavailable", "for_requests": 0}, "for_requests"),
        ({"kind": "unavailable", "for_s": 1, "refuse_with": 503}, "refuse_with"),
        ({"kind": "unavailable", "for_s": 1, "refuse_with": "reset"}, "refuse_with"),
        ({"kind": "drop_websockets", "abrupt": "yes"}, "abrupt"),
        ({"kind": "execution_error", "exception_type": "not a name"}, "exception_type"),
        ({"kind": "execution_error", "exception_type": ""}, "exception_type"),
        ({"kind": "execution_error", "exception_message": None}, "exception_message"),
    ],
)
def test_invalid_faults_name_the_field(body, field):
    with pytest.raises(FaultSpecError) as caught:
        parse_fault(body, CLASSES)
    assert caught.value.field == field
    assert caught.value.message


def test_unknown_classes_pass_without_a_catalogue():
    assert parse_fault({"kind": "hang", "at_node_class": "Anything"}).at_node_class == "Anything"


HANG = FaultSpec("hang", "in_prompt")


@pytest.mark.parametrize(
    ("spec", "point", "expected"),
    [
        (HANG, ("p", "1", "LoadImage", None), True),
        (HANG, ("p", "12", "KSampler", 1), False),
        (FaultSpec("hang", "in_prompt", at_node_class="KSampler"), ("p", "12", "KSampler", None), True),
        (FaultSpec("hang", "in_prompt", at_node_class="KSampler"), ("p", "13", "VAEDecode", None), False),
        (FaultSpec("hang", "in_prompt", at_node_class="KSampler", at_step=2), ("p", "12", "KSampler", 2), True),
        (FaultSpec("hang", "in_prompt", at_node_class="KSampler", at_step=2), ("p", "12", "KSampler", 1), False),
        (FaultSpec("hang", "in_prompt", at_node_class="KSampler", at_step=2), ("p", "12", "KSampler", None), False),
        (FaultSpec("hang", "in_prompt", at_step=3), ("p", "20", "UpscaleModel", 3), True),
        (FaultSpec("hang", "in_prompt", at_node_id="12"), ("p", "12", "KSampler", None), True),
        (FaultSpec("hang", "in_prompt", at_node_id="12"), ("p", "7", "KSampler", None), False),
        (FaultSpec("hang", "in_prompt", prompt_id="p"), ("p", "1", "LoadImage", None), True),
        (FaultSpec("hang", "in_prompt", prompt_id="p"), ("q", "1", "LoadImage", None), False),
        (FaultSpec("restart", "now"), ("p", "1", "LoadImage", None), False),
    ],
)
def test_fires_at(spec, point, expected):
    assert fires_at(spec, *point) is expected


SERVER_FOR_2 = Outage("f1", "server", "503", requests_left=2)
SERVER_FOR_1 = Outage("f1", "server", "503", requests_left=1)
SERVER_UNTIL_10 = Outage("f2", "server", "close", until=10.0)
WEBSOCKETS_FOR_1 = Outage("f3", "websocket", "503", requests_left=1)


@pytest.mark.parametrize(
    ("outages", "path", "now", "refused_by", "remaining", "ended"),
    [
        ((), "/prompt", 0.0, None, (), ()),
        ((SERVER_FOR_2,), "/prompt", 0.0, SERVER_FOR_2, (SERVER_FOR_1,), ()),
        ((SERVER_FOR_1,), "/ws", 0.0, SERVER_FOR_1, (), (SERVER_FOR_1,)),
        ((SERVER_UNTIL_10,), "/history/x", 9.9, SERVER_UNTIL_10, (SERVER_UNTIL_10,), ()),
        ((SERVER_UNTIL_10,), "/history/x", 10.0, None, (), (SERVER_UNTIL_10,)),
        ((SERVER_UNTIL_10,), "/emulator/faults", 1.0, None, (SERVER_UNTIL_10,), ()),
        ((SERVER_UNTIL_10,), "/api/emulator/stats", 1.0, None, (SERVER_UNTIL_10,), ()),
        ((WEBSOCKETS_FOR_1,), "/prompt", 0.0, None, (WEBSOCKETS_FOR_1,), ()),
        ((WEBSOCKETS_FOR_1,), "/api/ws", 0.0, WEBSOCKETS_FOR_1, (), (WEBSOCKETS_FOR_1,)),
        ((WEBSOCKETS_FOR_1, SERVER_UNTIL_10), "/prompt", 0.0, SERVER_UNTIL_10, (WEBSOCKETS_FOR_1, SERVER_UNTIL_10), ()),
        ((WEBSOCKETS_FOR_1, SERVER_UNTIL_10), "/ws", 0.0, WEBSOCKETS_FOR_1, (SERVER_UNTIL_10,), (WEBSOCKETS_FOR_1,)),
        (
            (Outage("f4", "server", "503", until=5.0, requests_left=3),),
            "/prompt",
            6.0,
            None,
            (),
            (Outage("f4", "server", "503", until=5.0, requests_left=3),),
        ),
    ],
)
def test_admit(outages, path, now, refused_by, remaining, ended):
    verdict = admit(outages, path, now)
    assert (verdict.refused_by, verdict.remaining, verdict.ended) == (refused_by, remaining, ended)


def test_expire():
    assert expire((SERVER_FOR_2, SERVER_UNTIL_10), 10.5) == ((SERVER_FOR_2,), (SERVER_UNTIL_10,))


@pytest.mark.parametrize(
    ("body", "now", "expected"),
    [
        ({"kind": "unavailable", "for_s": 2}, 100.0, Outage("f", "server", "503", until=102.0)),
        ({"kind": "restart", "for_requests": 3}, 0.0, Outage("f", "server", "close", requests_left=3)),
        (
            {"kind": "drop_websockets", "for_s": 1, "for_requests": 2, "refuse_with": "503"},
            5.0,
            Outage("f", "websocket", "503", until=6.0, requests_left=2),
        ),
    ],
)
def test_outage_for(body, now, expected):
    spec = parse_fault(body)
    assert spec.starts_outage
    assert outage_for(spec, "f", now) == expected


@pytest.mark.parametrize(
    ("body", "starts_outage"),
    [
        ({"kind": "restart"}, False),
        ({"kind": "drop_websockets"}, False),
        ({"kind": "hang"}, False),
        ({"kind": "drop_websockets", "for_requests": 1}, True),
    ],
)
def test_which_faults_start_outages(body, starts_outage):
    assert parse_fault(body).starts_outage is starts_outage


@pytest.mark.parametrize(
    ("type_name", "reported"),
    [
        ("RuntimeError", "RuntimeError"),
        ("KeyError", "KeyError"),
        ("torch.OutOfMemoryError", "torch.OutOfMemoryError"),
        ("comfy.model_management.InterruptProcessingException", "comfy.model_management.InterruptProcessingException"),
    ],
)
def test_injected_exception_is_reported_under_the_given_name(type_name, reported):
    exc = injected_exception(type_name, "it broke")
    assert _full_type_name(type(exc)) == reported
    assert str(exc) == "it broke"
    assert isinstance(exc, Exception)


def test_as_json_shows_only_the_kinds_fields():
    assert parse_fault({"kind": "hang", "at_step": 2}).as_json() == {
        "kind": "hang",
        "when": "in_prompt",
        "prompt_id": None,
        "at_node_class": None,
        "at_node_id": None,
        "at_step": 2,
        "times": 1,
    }
    assert set(parse_fault({"kind": "unavailable", "for_s": 1}).as_json()) >= {"for_s", "for_requests", "refuse_with"}


def test_meter_counts_each_prompt_and_keeps_the_newest():
    meter = BusyMeter(clock=iter(range(100)).__next__, prompt_limit=2)
    for prompt_id, outcome in (("a", "abandoned"), ("a", "succeeded"), ("b", "failed"), ("c", "interrupted")):
        meter.queued(prompt_id)
        meter.begin(prompt_id)
        meter.end(prompt_id, outcome)
    snapshot = meter.snapshot()
    assert snapshot["prompts"] == {
        "b": {"queued": 1, "executed": 1, "outcomes": ["failed"]},
        "c": {"queued": 1, "executed": 1, "outcomes": ["interrupted"]},
    }
    assert (snapshot["prompts_executed"], snapshot["prompts_abandoned"], snapshot["prompts_succeeded"]) == (4, 1, 1)
    with pytest.raises(ValueError):
        meter.end("c", "exploded")
