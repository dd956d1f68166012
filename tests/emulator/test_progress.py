"""Simulated model graphs: sampler progress frames, reconnecting mid-run, and the marked stand-in image."""

from __future__ import annotations

import io

import requests
from PIL import Image

from gpuorch_dev.emulator.images import _MARK_COLOUR

from .conftest import DEADLINE_S, MODEL_FILES, history, new_client_id, png_bytes, submit, upload


def edit_graph(seed: int = 7, steps: int = 4, prompt: str = "turn the sky purple", prefix: str = "edit") -> dict:
    """A Qwen-Image-Edit style graph: loaders, LoRA, model patches, edit encoders, sampler, VAE, save."""
    return {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": MODEL_FILES["diffusion_models"][0], "weight_dtype": "default"},
        },
        "2": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": MODEL_FILES["text_encoders"][0], "type": "qwen_image"},
        },
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": MODEL_FILES["vae"][0]}},
        "4": {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {"model": ["1", 0], "lora_name": MODEL_FILES["loras"][0], "strength_model": 1.0},
        },
        "5": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["4", 0], "shift": 3.0}},
        "6": {"class_type": "CFGNorm", "inputs": {"model": ["5", 0], "strength": 1.0}},
        "7": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}},
        "8": {
            "class_type": "ImageScaleToTotalPixels",
            "inputs": {"image": ["7", 0], "upscale_method": "lanczos", "megapixels": 0.01, "resolution_steps": 8},
        },
        "9": {
            "class_type": "TextEncodeQwenImageEditPlus",
            "inputs": {"clip": ["2", 0], "prompt": prompt, "vae": ["3", 0], "image1": ["8", 0]},
        },
        "10": {
            "class_type": "TextEncodeQwenImageEditPlus",
            "inputs": {"clip": ["2", 0], "prompt": "", "vae": ["3", 0], "image1": ["8", 0]},
        },
        "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["8", 0], "vae": ["3", 0]}},
        "12": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["6", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "simple",
                "positive": ["9", 0],
                "negative": ["10", 0],
                "latent_image": ["11", 0],
                "denoise": 1.0,
            },
        },
        "13": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["3", 0]}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": prefix}},
    }


def _run(emulator, connect, graph: dict) -> tuple[str, list[dict], Image.Image]:
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    response = submit(emulator, graph, client_id)
    assert response.status_code == 200, response.text
    prompt_id = response.json()["prompt_id"]
    recorder.wait_done(prompt_id)
    entry = history(emulator, prompt_id)[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    (image,) = entry["outputs"]["14"]["images"]
    content = requests.get(f"{emulator.url}/view", params=image, timeout=DEADLINE_S).content
    return prompt_id, recorder.snapshot(), Image.open(io.BytesIO(content)).convert("RGB")


def test_sampler_reports_progress_per_step(emulator, connect, progress_trace):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    prompt_id, frames, _ = _run(emulator, connect, edit_graph(steps=4))

    progress = [f["data"] for f in frames if f["type"] == "progress"]
    assert progress == [{"value": step, "max": 4, "prompt_id": prompt_id, "node": "12"} for step in range(1, 5)]
    recorded = next(m for m in progress_trace["WS messages (upscale-model run)"] if m["type"] == "progress")
    assert set(progress[0]) == set(recorded["data"])
    # Each progress frame follows a progress_state for the same step, as in the trace.
    types = [f["type"] for f in frames]
    first = types.index("progress")
    assert types[first - 1] == "progress_state"
    finished = next(
        f
        for f in frames
        if f["type"] == "progress_state" and f["data"]["nodes"].get("12", {}).get("state") == "finished"
    )
    assert finished["data"]["nodes"]["12"]["value"] == 4 and finished["data"]["nodes"]["12"]["max"] == 4


def test_stand_in_is_marked_and_deterministic(emulator, connect):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    _, _, first = _run(emulator, connect, edit_graph(seed=7, prefix="a"))
    assert first.getpixel((0, 0)) == _MARK_COLOUR
    assert first.getpixel((first.width - 1, first.height - 1)) == _MARK_COLOUR

    # Drop the cache so the same inputs are really rendered a second time.
    assert requests.post(f"{emulator.url}/free", json={"free_memory": True}, timeout=DEADLINE_S).status_code == 200
    _, frames, again = _run(emulator, connect, edit_graph(seed=7, prefix="b"))
    assert next(f for f in frames if f["type"] == "execution_cached")["data"]["nodes"] == []
    assert again.tobytes() == first.tobytes()

    _, _, other_seed = _run(emulator, connect, edit_graph(seed=8, prefix="c"))
    _, _, other_prompt = _run(emulator, connect, edit_graph(seed=7, prompt="make it night", prefix="d"))
    assert other_seed.tobytes() != first.tobytes()
    assert other_prompt.tobytes() != first.tobytes()


def test_stand_in_follows_the_reference_image(emulator, connect):
    upload(emulator, "ref.png", png_bytes((120, 80), seed=0))
    _, _, first = _run(emulator, connect, edit_graph(prefix="a"))
    upload(emulator, "ref.png", png_bytes((120, 80), seed=90), overwrite="true")
    _, _, second = _run(emulator, connect, edit_graph(prefix="b"))
    assert first.size == second.size
    assert first.tobytes() != second.tobytes()


def test_reconnect_mid_run_resends_current_node(start_emulator, connect, progress_trace):
    emulator = start_emulator(step_seconds=0.02)
    upload(emulator, "ref.png", png_bytes((120, 80)))
    client_id = new_client_id()
    first_socket = connect(emulator, client_id)
    prompt_id = submit(emulator, edit_graph(steps=200), client_id).json()["prompt_id"]
    first_socket.wait_for(lambda f: f["type"] == "progress")
    first_socket.close()

    second_socket = connect(emulator, client_id)
    greeting, current = second_socket.wait_for(lambda f: f["type"] == "status"), None
    current = second_socket.wait_for(lambda f: f["type"] == "executing")
    recorded_greeting, recorded_current = progress_trace["WS reconnect same clientId mid-run: first 2 msgs"]
    assert set(greeting["data"]) == set(recorded_greeting["data"])
    assert greeting["data"]["status"]["exec_info"]["queue_remaining"] == 1
    assert current == {"type": "executing", "data": {"node": "12"}}
    assert recorded_current["data"].keys() == current["data"].keys()
    assert second_socket.snapshot()[:2] == [greeting, current]

    requests.post(f"{emulator.url}/interrupt", json={"prompt_id": prompt_id}, timeout=DEADLINE_S)
    second_socket.wait_done(prompt_id)


def test_feature_flags_reply(emulator, connect, progress_trace):
    recorder = connect(emulator, new_client_id())
    recorder.send({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    reply = recorder.wait_for(lambda f: f["type"] == "feature_flags")
    assert reply == progress_trace["ws feature_flags reply"]


def test_socket_without_client_id_gets_a_generated_sid(emulator, connect, progress_trace):
    recorder = connect(emulator)
    greeting = recorder.snapshot()[0]
    assert greeting["type"] == progress_trace["ws first message"]["type"]
    assert set(greeting["data"]) == set(progress_trace["ws first message"]["data"])
    assert len(greeting["data"]["sid"]) == 32
