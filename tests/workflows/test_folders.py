"""Loading workflow folders: a good folder needs no code; a broken one fails naming the file and problem."""

from __future__ import annotations

import json
import shutil

import pytest

from gpuorch.workflows import UnknownWorkflow, WorkflowDefinitionError, load_workflows, load_workflow
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from tests.paths import REPO


def entry(params: dict, name: str) -> dict:
    return next(p for p in params["params"] if p["name"] == name)


def test_the_shipped_catalogue(workflows):
    assert workflows.names() == ["camera-angle", "qwen-image-edit"]
    assert [w.name for w in workflows] == workflows.names()
    assert len(workflows) == 2 and "camera-angle" in workflows and "nope" not in workflows
    assert workflows["camera-angle"] is workflows.get("camera-angle")
    assert all(w.description for w in workflows)


def test_unknown_workflow_is_a_key_error_naming_the_known_ones(workflows):
    with pytest.raises(KeyError) as caught:
        workflows.get("upscale")
    assert isinstance(caught.value, UnknownWorkflow)
    assert str(caught.value) == "No workflow is named 'upscale'; known: camera-angle, qwen-image-edit."


def test_the_default_root_is_the_builtin_workflows():
    assert BUILTIN_WORKFLOWS == REPO / "gpuorch" / "workflows" / "builtin"


def test_a_new_folder_is_a_new_workflow(tmp_path):
    shutil.copytree(BUILTIN_WORKFLOWS / "qwen-image-edit", tmp_path / "another-edit")
    shutil.copytree(BUILTIN_WORKFLOWS / "camera-angle", tmp_path / "camera-angle")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "README.md").write_text("not a workflow", encoding="utf-8")
    assert load_workflows(tmp_path).names() == ["another-edit", "camera-angle"]


def test_a_workflow_with_new_parameter_types_needs_no_code(copy_workflow):
    # Expose the sampler's denoise (number) and steps (integer) and the CLIP device (string choice).
    def params(data):
        data["params"] += [
            {"name": "denoise", "type": "number", "minimum": 0.1, "maximum": 1.0, "default": 1.0,
             "description": "Denoise strength.", "bind": [{"node": "16", "input": "denoise"}]},
            {"name": "steps", "type": "integer", "minimum": 1, "maximum": 8, "default": 4,
             "description": "Sampler steps.", "bind": [{"node": "16", "input": "steps"}]},
            {"name": "clip_device", "type": "string", "choices": ["default", "cpu"], "max_length": 10,
             "default": "default", "description": "Where the text encoder runs.",
             "bind": [{"node": "2", "input": "device"}]},
        ]

    workflow = load_workflow(copy_workflow("qwen-image-edit", params=params, as_name="tunable-edit"))
    loaded = workflow.request_schema().load({"prompt": "p", "images": ["s3://bkt/a.png"], "denoise": 0.5})
    assert (loaded["denoise"], loaded["steps"], loaded["clip_device"]) == (0.5, 4, "default")


def _set(target: dict, **values):
    target.update(values)


def _bind(p: dict, name: str, node: str, input_name: str | None = None):
    entry(p, name)["bind"] = [{"node": node, "input": input_name}] if input_name else [{"node": node}]


GRAPH_BREAKS = [
    (lambda g: g.pop("18"), "no output node carries the {{output_prefix}} placeholder"),
    (lambda g: g["1"].pop("class_type"), "node 1: needs a class_type string"),
    (lambda g: g["1"].__setitem__("inputs", []), "node 1: needs an inputs object"),
    (lambda g: g["1"].__setitem__("widgets", {}), "node 1: unknown key(s) ['widgets']"),
    (lambda g: g["5"]["inputs"].__setitem__("model", ["99", 0]), "node 5 input 'model': links to missing node 99"),
    (lambda g: g["5"]["inputs"].__setitem__("model", [4, 0]), "a link must be [node_id, output_index]"),
    (lambda g: g["4"]["inputs"].__setitem__("model", ["6", 0]), "is part of a cycle of links"),
    (lambda g: g["3"]["inputs"].__setitem__("vae_name", "{{model.vae}}"), "unknown placeholder {{model.vae}}"),
    (lambda g: g.clear(), "the graph must be a non-empty object of nodes"),
]


@pytest.mark.parametrize(("edit_graph", "problem"), GRAPH_BREAKS)
def test_broken_graphs_name_graph_json(copy_workflow, edit_graph, problem):
    folder = copy_workflow("qwen-image-edit", graph=edit_graph)
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflow(folder)
    assert caught.value.path == folder / "graph.json"
    assert problem in str(caught.value)


EDIT_PARAMS_BREAKS = [
    (lambda p: p.pop("description"), "top level: missing 'description'"),
    (lambda p: p.__setitem__("version", 2), "top level: unknown key(s) 'version'"),
    (lambda p: p.__setitem__("params", []), "'params' must be a non-empty list"),
    (lambda p: p["params"].append("seed"), "params[4]: expected an object"),
    (lambda p: _set(entry(p, "prompt"), requird=True), "params[0] (prompt): unknown key(s) 'requird'"),
    (lambda p: _set(entry(p, "prompt"), type="text"), "unknown type 'text'; known: string, integer"),
    (lambda p: _set(entry(p, "prompt"), name="Prompt"), "'name' must be a parameter name"),
    (lambda p: _set(entry(p, "negative_prompt"), name="output"), "'output' is reserved for a job's options"),
    (lambda p: entry(p, "prompt").pop("description"), "params[0] (prompt): missing 'description'"),
    (lambda p: entry(p, "prompt").pop("max_length"), "params[0] (prompt): missing 'max_length'"),
    (lambda p: _set(entry(p, "prompt"), min_length=5, max_length=2), "max_length is below min_length"),
    (lambda p: _set(entry(p, "prompt"), default="x"), "a required parameter cannot have a default"),
    (lambda p: entry(p, "negative_prompt").pop("default"), "an optional parameter that binds needs a default"),
    (lambda p: _set(entry(p, "negative_prompt"), max_length=2, default="abc"), "the default 'abc' is not valid"),
    (lambda p: p["params"].append(dict(entry(p, "seed"))), "parameter 'seed' is declared twice"),
    (lambda p: _bind(p, "prompt", "99", "prompt"), "prompt: node 99 is not in graph.json"),
    (lambda p: _bind(p, "prompt", "13", "text"), "node 13 input 'text' is not in graph.json"),
    (lambda p: _bind(p, "prompt", "13", "clip"), "holds a link or placeholder"),
    (lambda p: _bind(p, "prompt", "1", "unet_name"), "holds a link or placeholder"),
    (lambda p: _bind(p, "prompt", "13"), "'bind' entries must be"),
    (lambda p: _set(entry(p, "prompt"), bind=[]), "'bind' must be a non-empty list"),
    (lambda p: _bind(p, "negative_prompt", "13", "prompt"), "is already bound by 'prompt'"),
    (lambda p: _set(entry(p, "images"), required=False), "an image_list parameter must be required"),
    (lambda p: _set(entry(p, "images"), max_items=2), "declares 3 slot(s) for max_items 2"),
    (lambda p: _set(entry(p, "images"), min_items=0), "'min_items' must be a positive integer"),
    (lambda p: entry(p, "images")["slots"][2].pop("nodes"), "an optional slot's 'nodes' must include every node"),
    (lambda p: entry(p, "images")["slots"][2].update(nodes=["11", "77"]), "images: node 77 is not in graph.json"),
    (lambda p: _set(entry(p, "seed"), maximum=-1), "'maximum' must be a non-negative integer"),
    (lambda p: p["params"].append({"name": "strength", "type": "number", "description": "Unused."}),
     "strength: binds nowhere"),
]


@pytest.mark.parametrize(("edit_params", "problem"), EDIT_PARAMS_BREAKS)
def test_broken_edit_params_name_params_json(copy_workflow, edit_params, problem):
    folder = copy_workflow("qwen-image-edit", params=edit_params)
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflow(folder)
    assert caught.value.path == folder / "params.json"
    assert problem in str(caught.value)


CAMERA_PARAMS_BREAKS = [
    (lambda p: _set(entry(p, "image"), required=False), "an image parameter must be required"),
    (lambda p: _set(entry(p, "move"), required=False), "a camera_move parameter must be required"),
    (lambda p: _set(entry(p, "move"), moves="../../secrets.json"), "must be inside the workflow folder"),
    (lambda p: _set(entry(p, "move"), degrees_param="angle"), "refers to parameter 'angle', which is not declared"),
    (lambda p: _set(entry(p, "degrees"), type="number"), "a rotation's degrees must be an integer"),
    (lambda p: _set(entry(p, "degrees"), choices=[45]), "differ from the angles of the moves table [45, 90]"),
    (lambda p: _set(entry(p, "degrees"), required=True), "must be optional, without default or bind"),
    (lambda p: _set(entry(p, "degrees"), bind=[{"node": "13", "input": "steps"}], default=45),
     "must be optional, without default or bind"),
]


@pytest.mark.parametrize(("edit_params", "problem"), CAMERA_PARAMS_BREAKS)
def test_broken_camera_params_name_params_json(copy_workflow, edit_params, problem):
    folder = copy_workflow("camera-angle", params=edit_params)
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflow(folder)
    assert caught.value.path == folder / "params.json"
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("damage", "file_name", "problem"),
    [
        (lambda f: (f / "graph.json").unlink(), "graph.json", "file not found"),
        (lambda f: (f / "params.json").unlink(), "params.json", "file not found"),
        (lambda f: (f / "graph.json").write_text("{nope", encoding="utf-8"), "graph.json", "not readable JSON"),
        (lambda f: (f / "params.json").write_text("[]", encoding="utf-8"), "params.json", "expected an object"),
        (lambda f: (f / "camera_moves.json").unlink(), "camera_moves.json", "file not found"),
        (
            lambda f: (f / "camera_moves.json").write_text(json.dumps({"moves": {"x": {}}}), encoding="utf-8"),
            "camera_moves.json",
            "moves.x.phrase: expected a non-empty string",
        ),
    ],
)
def test_broken_files_are_named(copy_workflow, damage, file_name, problem):
    folder = copy_workflow("camera-angle")
    damage(folder)
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflow(folder)
    assert caught.value.path.resolve() == (folder / file_name).resolve()
    assert problem in str(caught.value)


def test_a_folder_name_must_fit_a_url(copy_workflow):
    folder = copy_workflow("camera-angle", as_name="Camera_Angle")
    with pytest.raises(WorkflowDefinitionError, match="lower-case words joined by '-'"):
        load_workflow(folder)


def test_loading_fails_loudly_on_one_broken_folder(tmp_path):
    shutil.copytree(BUILTIN_WORKFLOWS / "camera-angle", tmp_path / "camera-angle")
    (tmp_path / "half-done").mkdir()
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflows(tmp_path)
    assert caught.value.path == tmp_path / "half-done" / "graph.json"


@pytest.mark.parametrize(
    ("make_root", "problem"),
    [
        (lambda tmp: tmp / "missing", "not a directory of workflow folders"),
        (lambda tmp: tmp, "holds no workflow folders"),
    ],
)
def test_workflows_root_problems(tmp_path, make_root, problem):
    with pytest.raises(WorkflowDefinitionError, match=problem):
        load_workflows(make_root(tmp_path))
