"""Graph helpers: structure checks, placeholders and cutting nodes out of a graph."""

from __future__ import annotations

import pytest

from gpuorch.workflows.graph import Placeholder, find_placeholders, is_link, remove_nodes, structure_problems


def node(class_type="N", **inputs):
    return {"class_type": class_type, "inputs": inputs}


@pytest.mark.parametrize(
    ("graph", "problems"),
    [
        ({"1": node(), "2": node(x=["1", 0])}, []),
        ({}, ["the graph must be a non-empty object of nodes"]),
        ([], ["the graph must be a non-empty object of nodes"]),
        ({"1": {"inputs": {}}}, ["node 1: needs a class_type string"]),
        ({"1": {"class_type": "N"}}, ["node 1: needs an inputs object"]),
        ({"1": node(x=["2", 0])}, ["node 1 input 'x': links to missing node 2"]),
        ({"1": node(x=["1", -1])}, ["node 1 input 'x': a link must be [node_id, output_index], not ['1', -1]"]),
        ({"1": node(x=[1, 2, 3])}, ["node 1 input 'x': a link must be [node_id, output_index], not [1, 2, 3]"]),
        ({"1": node(x=["2", 0]), "2": node(y=["1", 0])}, ["node 1: is part of a cycle of links"]),
        ({"1": node(x=["1", 0])}, ["node 1: is part of a cycle of links"]),
    ],
)
def test_structure_problems(graph, problems):
    assert structure_problems(graph) == problems


def test_a_deep_chain_does_not_recurse():
    graph = {"0": node()} | {str(i): node(x=[str(i - 1), 0]) for i in range(1, 5000)}
    assert structure_problems(graph) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{output_prefix}}", Placeholder("1", "v", "output_prefix")),
        (" {{ models.vae }} ", Placeholder("1", "v", "models.vae")),
        ("a {{models.vae}} b", None),
        ("{models.vae}", None),
        (3, None),
    ],
)
def test_placeholders(value, expected):
    found = find_placeholders({"1": node(v=value)})
    assert found == ([expected] if expected else [])


def test_placeholder_model_role():
    assert Placeholder("1", "v", "models.vae").model_role == "vae"
    assert Placeholder("1", "v", "output_prefix").model_role is None


def test_remove_nodes_drops_links_to_them():
    graph = {
        "load": node("LoadImage", image="a.png"),
        "scale": node("Scale", image=["load", 0]),
        "enc": node("Encode", prompt="p", image1=["keep", 0], image2=["scale", 0]),
        "keep": node("LoadImage", image="b.png"),
    }
    remove_nodes(graph, {"load", "scale"})
    assert set(graph) == {"enc", "keep"}
    assert graph["enc"]["inputs"] == {"prompt": "p", "image1": ["keep", 0]}


def test_is_link_follows_comfyui():
    assert is_link(["1", 0]) and is_link([]) and not is_link("1") and not is_link({"1": 0})
