"""Simulated model nodes: loaders, text encoders, model patches, samplers and the VAE.

Nothing here loads weights. Each value records where it came from, so the sampler's stand-in render is a
deterministic function of the real inputs (reference image, seed, prompt text, model, LoRAs, settings),
and everything a VAE decodes or a model upscales is visibly marked as emulated.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace

from PIL import Image

from gpuorch_dev.emulator import images as ops
from gpuorch_dev.emulator.nodes import NodeContext, NodeOutput, node

Images = list[Image.Image]

_UPSCALE_FACTOR = re.compile(r"(?:^|[^0-9])(?:x(\d)|(\d)x)(?:[^0-9]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Model:
    """A diffusion model: the file it was "loaded" from and the patches applied since, in order."""

    name: str
    patches: tuple[str, ...] = ()

    def patched(self, patch: str) -> Model:
        return replace(self, patches=(*self.patches, patch))


@dataclass(frozen=True)
class Clip:
    names: tuple[str, ...]
    kind: str
    patches: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vae:
    name: str


@dataclass(frozen=True)
class UpscaleModel:
    name: str
    scale: int


@dataclass(frozen=True)
class Conditioning:
    """Encoded text plus the reference images an edit model sees."""

    text: str
    clip: Clip
    references: tuple[Image.Image, ...] = field(default=(), compare=False)
    zeroed: bool = False

    def fingerprint(self) -> list[object]:
        return [
            self.text,
            list(self.clip.names),
            list(self.clip.patches),
            self.zeroed,
            ops.digest_images(self.references),
        ]


@dataclass(frozen=True)
class Latent:
    """A latent batch: its pixel size, what was encoded into it, and what a sampler rendered into it."""

    width: int
    height: int
    batch: int
    encoded: tuple[Image.Image, ...] = field(default=(), compare=False)
    rendered: tuple[Image.Image, ...] = field(default=(), compare=False)


@node("UNETLoader")
def unet_loader(ctx: NodeContext, unet_name: str, weight_dtype: str = "default") -> NodeOutput:
    return NodeOutput((Model(unet_name, (f"dtype={weight_dtype}",)),))


@node("CheckpointLoaderSimple")
def checkpoint_loader(ctx: NodeContext, ckpt_name: str) -> NodeOutput:
    return NodeOutput((Model(ckpt_name), Clip((ckpt_name,), "checkpoint"), Vae(ckpt_name)))


@node("CLIPLoader")
def clip_loader(
    ctx: NodeContext, clip_name: str, type: str = "stable_diffusion", device: str = "default"
) -> NodeOutput:
    return NodeOutput((Clip((clip_name,), type),))


@node("DualCLIPLoader")
def dual_clip_loader(
    ctx: NodeContext, clip_name1: str, clip_name2: str, type: str, device: str = "default"
) -> NodeOutput:
    return NodeOutput((Clip((clip_name1, clip_name2), type),))


@node("VAELoader")
def vae_loader(ctx: NodeContext, vae_name: str) -> NodeOutput:
    return NodeOutput((Vae(vae_name),))


@node("UpscaleModelLoader")
def upscale_model_loader(ctx: NodeContext, model_name: str) -> NodeOutput:
    match = _UPSCALE_FACTOR.search(model_name)
    scale = int(match.group(1) or match.group(2)) if match else 4
    return NodeOutput((UpscaleModel(model_name, scale),))


@node("LoraLoaderModelOnly")
def lora_loader_model_only(ctx: NodeContext, model: Model, lora_name: str, strength_model: float) -> NodeOutput:
    return NodeOutput((model.patched(f"lora={lora_name}@{strength_model}"),))


@node("LoraLoader")
def lora_loader(
    ctx: NodeContext, model: Model, clip: Clip, lora_name: str, strength_model: float, strength_clip: float
) -> NodeOutput:
    patched_clip = replace(clip, patches=(*clip.patches, f"lora={lora_name}@{strength_clip}"))
    return NodeOutput((model.patched(f"lora={lora_name}@{strength_model}"), patched_clip))


@node("ModelSamplingAuraFlow")
def model_sampling_aura_flow(ctx: NodeContext, model: Model, shift: float) -> NodeOutput:
    return NodeOutput((model.patched(f"auraflow_shift={shift}"),))


@node("CFGNorm")
def cfg_norm(ctx: NodeContext, model: Model, strength: float) -> NodeOutput:
    return NodeOutput((model.patched(f"cfg_norm={strength}"),))


@node("CLIPTextEncode")
def clip_text_encode(ctx: NodeContext, clip: Clip, text: str) -> NodeOutput:
    return NodeOutput((Conditioning(text, clip),))


def _edit_conditioning(clip: Clip, prompt: str, *images: Images | None) -> Conditioning:
    references = tuple(batch[0] for batch in images if batch)
    return Conditioning(prompt, clip, references)


@node("TextEncodeQwenImageEdit")
def text_encode_qwen_image_edit(
    ctx: NodeContext, clip: Clip, prompt: str, vae: Vae | None = None, image: Images | None = None
) -> NodeOutput:
    return NodeOutput((_edit_conditioning(clip, prompt, image),))


@node("TextEncodeQwenImageEditPlus")
def text_encode_qwen_image_edit_plus(
    ctx: NodeContext,
    clip: Clip,
    prompt: str,
    vae: Vae | None = None,
    image1: Images | None = None,
    image2: Images | None = None,
    image3: Images | None = None,
) -> NodeOutput:
    return NodeOutput((_edit_conditioning(clip, prompt, image1, image2, image3),))


@node("ConditioningZeroOut")
def conditioning_zero_out(ctx: NodeContext, conditioning: Conditioning) -> NodeOutput:
    return NodeOutput((replace(conditioning, zeroed=True),))


def _empty_latent(width: int, height: int, batch_size: int) -> NodeOutput:
    return NodeOutput((Latent(width, height, batch_size),))


@node("EmptySD3LatentImage")
def empty_sd3_latent_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1) -> NodeOutput:
    return _empty_latent(width, height, batch_size)


@node("EmptyLatentImage")
def empty_latent_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1) -> NodeOutput:
    return _empty_latent(width, height, batch_size)


@node("VAEEncode")
def vae_encode(ctx: NodeContext, pixels: Images, vae: Vae) -> NodeOutput:
    # A real VAE works on 8-pixel blocks; the latent covers the image cropped to whole blocks.
    width, height = max(8, pixels[0].width // 8 * 8), max(8, pixels[0].height // 8 * 8)
    encoded = tuple(ops.resize(p, (width, height), "bilinear", "center") for p in pixels)
    return NodeOutput((Latent(width, height, len(pixels), encoded=encoded),))


def _sample(
    ctx: NodeContext,
    model: Model,
    seed: int,
    steps: int,
    settings: list[object],
    positive: Conditioning,
    negative: Conditioning,
    latent_image: Latent,
    denoise: float,
) -> NodeOutput:
    for _ in ctx.progress(steps):
        pass
    key_parts: list[object] = [
        seed,
        model.name,
        list(model.patches),
        settings,
        positive.fingerprint(),
        negative.fingerprint(),
        ops.digest_images(latent_image.encoded),
        denoise,
    ]
    size = (latent_image.width, latent_image.height)
    rendered = []
    for index in range(latent_image.batch):
        # Image to image starts from the encoded picture; an edit model otherwise starts from its reference.
        base = _pick(latent_image.encoded, index) or _pick(positive.references, 0)
        key = json.dumps([*key_parts, index], default=str)
        rendered.append(ops.render_stand_in(base, size, key, denoise))
    return NodeOutput((replace(latent_image, rendered=tuple(rendered)),))


def _pick(images: tuple[Image.Image, ...], index: int) -> Image.Image | None:
    return images[min(index, len(images) - 1)] if images else None


@node("KSampler")
def ksampler(
    ctx: NodeContext,
    model: Model,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Conditioning,
    negative: Conditioning,
    latent_image: Latent,
    denoise: float = 1.0,
) -> NodeOutput:
    settings: list[object] = [steps, cfg, sampler_name, scheduler]
    return _sample(ctx, model, seed, steps, settings, positive, negative, latent_image, denoise)


@node("KSamplerAdvanced")
def ksampler_advanced(
    ctx: NodeContext,
    model: Model,
    add_noise: str,
    noise_seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Conditioning,
    negative: Conditioning,
    latent_image: Latent,
    start_at_step: int,
    end_at_step: int,
    return_with_leftover_noise: str,
) -> NodeOutput:
    run_steps = max(0, min(steps, end_at_step) - start_at_step)
    settings: list[object] = [
        steps,
        cfg,
        sampler_name,
        scheduler,
        add_noise,
        start_at_step,
        end_at_step,
        return_with_leftover_noise,
    ]
    strength = run_steps / steps if steps else 0.0
    return _sample(ctx, model, noise_seed, run_steps, settings, positive, negative, latent_image, strength)


@node("VAEDecode")
def vae_decode(ctx: NodeContext, samples: Latent, vae: Vae) -> NodeOutput:
    size = (samples.width, samples.height)
    sources = samples.rendered or samples.encoded
    decoded = [
        ops.mark_emulated(_pick(sources, index) or Image.new("RGB", size, (128, 128, 128)))
        for index in range(samples.batch)
    ]
    return NodeOutput((decoded,))


@node("ImageUpscaleWithModel")
def image_upscale_with_model(ctx: NodeContext, upscale_model: UpscaleModel, image: Images) -> NodeOutput:
    # ComfyUI reports one progress step per 512-pixel tile (32 pixels of overlap) of every image.
    width, height = image[0].size
    tiles = len(image) * math.ceil(width / 480) * math.ceil(height / 480)
    for _ in ctx.progress(tiles):
        pass
    size = (width * upscale_model.scale, height * upscale_model.scale)
    return NodeOutput(([ops.mark_emulated(ops.resize(p, size, "bicubic"), upscale_model.name) for p in image],))
