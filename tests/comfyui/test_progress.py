"""ProgressTracker and its weighting: table-driven, pure."""

from __future__ import annotations

import pytest

from gpuorch.comfyui.progress import (
    DEFAULT_STEP_WEIGHT,
    FALLBACK_STEPS,
    Progress,
    ProgressTracker,
    node_weights,
    sampler_steps,
)

# An image edit in miniature: the sampler (4 steps x 3) outweighs every other node together.
EDIT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
    "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
    "3": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "latent_image": ["1", 0], "steps": 4,
                                              "seed": 1, "cfg": 1.0, "denoise": 1.0}},
    "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["2", 2]}},
    "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "out"}},
}

SAMPLERS = {
    "k": {"class_type": "KSampler", "inputs": {"steps": 8}},
    "adv": {"class_type": "KSamplerAdvanced", "inputs": {"steps": 20, "start_at_step": 5, "end_at_step": 10}},
    "adv_open": {"class_type": "KSamplerAdvanced", "inputs": {"steps": 20, "start_at_step": 0,
                                                              "end_at_step": 10000}},
    "sched": {"class_type": "BasicScheduler", "inputs": {"steps": 6, "model": ["m", 0]}},
    "split": {"class_type": "SplitSigmas", "inputs": {"sigmas": ["sched", 0], "step": 2}},
    "custom": {"class_type": "SamplerCustomAdvanced", "inputs": {"sigmas": ["sched", 0]}},
    "custom_split": {"class_type": "SamplerCustom", "inputs": {"sigmas": ["split", 1]}},
    "linked": {"class_type": "KSampler", "inputs": {"steps": ["prim", 0]}},
    "prim": {"class_type": "PrimitiveInt", "inputs": {"value": 12}},
    "m": {"class_type": "UNETLoader", "inputs": {}},
}


@pytest.mark.parametrize(
    ("node", "steps"),
    [("k", 8), ("adv", 5), ("adv_open", 20), ("custom", 6), ("custom_split", 6), ("linked", None), ("m", None)],
)
def test_sampler_steps(node: str, steps: int | None) -> None:
    assert sampler_steps(SAMPLERS, node) == steps


def test_weights_count_sampler_steps_and_one_unit_per_other_node() -> None:
    weights = node_weights(SAMPLERS)
    assert weights["k"] == 8 * DEFAULT_STEP_WEIGHT
    assert weights["adv"] == 5 * DEFAULT_STEP_WEIGHT
    assert weights["linked"] == FALLBACK_STEPS * DEFAULT_STEP_WEIGHT
    assert weights["sched"] == weights["prim"] == weights["split"] == 1.0


def test_weights_cover_only_what_the_outputs_need() -> None:
    graph = {**EDIT, "9": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}}
    assert set(node_weights(graph, output_nodes=["5"])) == {"1", "2", "3", "4", "5"}
    assert set(node_weights(graph)) == {"1", "2", "3", "4", "5", "9"}


def _progress(graph, events):
    tracker = ProgressTracker(graph)
    seen = []
    for event, data in events:
        tracker.feed(event, data)
        seen.append(tracker.progress.percent)
    return tracker, seen


# Total work of EDIT: 1 + 1 + 12 + 1 + 1 = 16 units; with node 2 cached, 15.
@pytest.mark.parametrize(
    ("events", "percents"),
    [
        pytest.param(
            [("execution_start", {}), ("execution_cached", {"nodes": ["2"]}), ("executing", {"node": "1"}),
             ("executing", {"node": "3"}), ("progress", {"value": 1, "max": 4, "node": "3"}),
             ("progress", {"value": 4, "max": 4, "node": "3"}), ("executing", {"node": "4"}),
             ("executing", {"node": "5"}), ("executed", {"node": "5", "output": {}}),
             ("execution_success", {}), ("executing", {"node": None})],
            [0, 0, 0, 6, 26, 86, 86, 93, 99, 100, 100],
            id="a whole run: the cached loader leaves the total, samples move it most",
        ),
        pytest.param(
            [("executing", {"node": "4"})],
            [87],
            id="a reconnect mid-run: whatever feeds the running node is done",
        ),
        pytest.param(
            [("executing", {"node": "3"}), ("progress", {"value": 3, "max": 4, "node": "3"}),
             ("progress", {"value": 1, "max": 4, "node": "3"}), ("progress_state", {"nodes": {
                 "3": {"value": 0, "max": 4, "state": "running"}}})],
            [12, 68, 68, 68],
            id="never goes back",
        ),
        pytest.param(
            [("progress_state", {"nodes": {"1": {"state": "finished"}, "2": {"state": "finished"},
                                           "3": {"value": 2, "max": 4, "state": "running"}}})],
            [50],
            id="progress_state alone is enough",
        ),
        pytest.param(
            [("executing", {"node": "3"}), ("execution_error", {"node_id": "3"})],
            [12, 12],
            id="an error freezes the percentage",
        ),
        pytest.param(
            [("execution_cached", {"nodes": ["1", "2", "3", "4", "5"]}), ("execution_success", {})],
            [0, 100],
            id="fully cached rerun",
        ),
        pytest.param(
            [("status", {"status": {}}), ("feature_flags", {}), ("progress", {"value": "x", "max": 4}),
             ("executing", {"node": "77"}), ("progress", {"value": 5, "max": 0, "node": "3"})],
            [0, 0, 0, 0, 0],
            id="noise and unknown nodes change nothing",
        ),
    ],
)
def test_tracker(events, percents) -> None:
    assert _progress(EDIT, events)[1] == percents


def test_feed_answers_only_changes_and_names_the_running_node() -> None:
    tracker = ProgressTracker(EDIT)
    assert tracker.feed("execution_start", {}) is None
    assert tracker.feed("executing", {"node": "3"}) == Progress(12, "3", "KSampler")
    assert tracker.feed("progress", {"value": 2, "max": 4, "node": "3"}) == Progress(50, "3", "KSampler", 2, 4)
    assert tracker.feed("progress", {"value": 2, "max": 4, "node": "3"}) is None
    assert tracker.feed("executing", {"node": "4"}) == Progress(87, "4", "VAEDecode")
    assert tracker.complete() == Progress(100)
    assert tracker.complete() is None


def test_recorded_upscale_run(runs) -> None:
    run = runs["upscale"]
    tracker = ProgressTracker(run.graph)
    updates = [p for frame in run.frames if (p := tracker.feed(frame["type"], frame["data"])) is not None]
    percents = [p.percent for p in updates]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    ticks = [(p.step, p.steps) for p in updates if p.node_id == "4" and p.step is not None]
    assert ticks[0] == (1, 20) and ticks[-1] == (20, 20) and len(ticks) == 20
    assert {p.node_id for p in updates} >= {"1", "2", "3", "4", "5", "6"}
