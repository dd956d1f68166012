"""Image nodes the emulator runs for real with Pillow: loading, saving, scaling, inverting, cropping...

An IMAGE is a list of RGB ``PIL.Image`` (ComfyUI's batch dimension); a MASK is a list of ``L`` images where
255 stands for ComfyUI's 1.0.
"""

from __future__ import annotations

import json
import random
from typing import Any

from PIL import Image, ImageFilter, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from gpuorch_dev.emulator import images as ops
from gpuorch_dev.emulator.nodes import NodeContext, NodeOutput, node

Images = list[Image.Image]

# ComfyUI's PreviewImage names its files with a per-node random suffix drawn from this alphabet.
_PREVIEW_ALPHABET = "abcdefghijklmnopqrstupvxyz"


def _open(ctx: NodeContext, name: str, default_kind: str) -> Image.Image:
    return Image.open(ctx.storage.annotated_path(name, default_kind))


def _load(ctx: NodeContext, name: str, default_kind: str) -> NodeOutput:
    source = _open(ctx, name, default_kind)
    frames: Images = []
    masks: Images = []
    for frame in ImageSequence.Iterator(source):
        frame = ImageOps.exif_transpose(frame)
        picture = frame.convert("RGB")
        if frames and picture.size != frames[0].size:
            continue  # ComfyUI keeps only the frames as large as the first one
        frames.append(picture)
        if "A" in frame.getbands():
            masks.append(ImageOps.invert(frame.getchannel("A")))
        elif frame.mode == "P" and "transparency" in frame.info:
            masks.append(ImageOps.invert(frame.convert("RGBA").getchannel("A")))
        else:
            masks.append(Image.new("L", (64, 64), 0))
        if source.format == "MPO":
            break  # the extra MPO frames are depth maps, not a batch
    return NodeOutput((frames, masks))


@node("LoadImage")
def load_image(ctx: NodeContext, image: str) -> NodeOutput:
    return _load(ctx, image, "input")


@node("LoadImageOutput")
def load_image_output(ctx: NodeContext, image: str) -> NodeOutput:
    return _load(ctx, image, "output")


@node("LoadImageMask")
def load_image_mask(ctx: NodeContext, image: str, channel: str) -> NodeOutput:
    picture = ImageOps.exif_transpose(_open(ctx, image, "input"))
    band = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}[channel]
    if band not in picture.getbands():
        picture = picture.convert("RGBA")
    mask = picture.getchannel(band)
    # ComfyUI stores alpha masks inverted: opaque pixels are "not masked".
    return NodeOutput(([ImageOps.invert(mask) if band == "A" else mask],))


def _save(ctx: NodeContext, images: Images, kind: str, prefix: str, compress_level: int) -> list[dict[str, Any]]:
    target = ctx.storage.save_target(kind, prefix, images[0].width, images[0].height)
    metadata = PngInfo()
    metadata.add_text("prompt", json.dumps(dict(ctx.graph)))
    for key, value in (ctx.extra_data.get("extra_pnginfo") or {}).items():
        metadata.add_text(key, json.dumps(value))
    metadata.add_text("gpuorch_emulator", "written by the gpuorch ComfyUI emulator")
    results = []
    for batch_number, picture in enumerate(images):
        name = f"{target.base.replace('%batch_num%', str(batch_number))}_{target.counter + batch_number:05}_.png"
        picture.save(target.folder / name, pnginfo=metadata, compress_level=compress_level)
        results.append({"filename": name, "subfolder": target.subfolder, "type": kind})
    return results


@node("SaveImage")
def save_image(ctx: NodeContext, images: Images, filename_prefix: str = "ComfyUI") -> NodeOutput:
    return NodeOutput(ui={"images": _save(ctx, images, "output", filename_prefix, compress_level=4)})


@node("PreviewImage")
def preview_image(ctx: NodeContext, images: Images) -> NodeOutput:
    suffix = "".join(random.choice(_PREVIEW_ALPHABET) for _ in range(5))
    return NodeOutput(ui={"images": _save(ctx, images, "temp", f"ComfyUI_temp_{suffix}", compress_level=1)})


def _each(images: Images, size: tuple[int, int], method: str, crop: str = "disabled") -> NodeOutput:
    return NodeOutput(([ops.resize(picture, size, method, crop) for picture in images],))


@node("ImageScale")
def image_scale(ctx: NodeContext, image: Images, upscale_method: str, width: int, height: int, crop: str) -> NodeOutput:
    size = ops.scale_to_size(image[0].width, image[0].height, width, height)
    return _each(image, size, upscale_method, crop)


@node("ImageScaleBy")
def image_scale_by(ctx: NodeContext, image: Images, upscale_method: str, scale_by: float) -> NodeOutput:
    return _each(image, ops.scale_by_size(image[0].width, image[0].height, scale_by), upscale_method)


@node("ImageScaleToTotalPixels")
def image_scale_to_total_pixels(
    ctx: NodeContext, image: Images, upscale_method: str, megapixels: float, resolution_steps: int = 1
) -> NodeOutput:
    size = ops.total_pixels_size(image[0].width, image[0].height, megapixels, resolution_steps)
    return _each(image, size, upscale_method)


@node("ImageScaleToMaxDimension")
def image_scale_to_max_dimension(ctx: NodeContext, image: Images, upscale_method: str, largest_size: int) -> NodeOutput:
    return _each(image, ops.max_dimension_size(image[0].width, image[0].height, largest_size), upscale_method)


@node("FluxKontextImageScale")
def flux_kontext_image_scale(ctx: NodeContext, image: Images) -> NodeOutput:
    return _each(image, ops.kontext_size(image[0].width, image[0].height), "lanczos", "center")


@node("ImageInvert")
def image_invert(ctx: NodeContext, image: Images) -> NodeOutput:
    return NodeOutput(([ops.invert(picture) for picture in image],))


@node("ImageFlip")
def image_flip(ctx: NodeContext, image: Images, flip_method: str) -> NodeOutput:
    flip = ImageOps.flip if flip_method.startswith("x-axis") else ImageOps.mirror
    return NodeOutput(([flip(picture) for picture in image],))


@node("ImageRotate")
def image_rotate(ctx: NodeContext, image: Images, rotation: str) -> NodeOutput:
    turns = {
        "none": None,
        "90 degrees": Image.Transpose.ROTATE_270,
        "180 degrees": Image.Transpose.ROTATE_180,
        "270 degrees": Image.Transpose.ROTATE_90,
    }[rotation]  # ComfyUI rotates clockwise
    return NodeOutput(([picture.copy() if turns is None else picture.transpose(turns) for picture in image],))


@node("ImageCrop")
def image_crop(ctx: NodeContext, image: Images, width: int, height: int, x: int, y: int) -> NodeOutput:
    full_width, full_height = image[0].size
    x, y = min(x, full_width - 1), min(y, full_height - 1)
    box = (x, y, min(x + width, full_width), min(y + height, full_height))
    return NodeOutput(([picture.crop(box) for picture in image],))


@node("ImageBlur")
def image_blur(ctx: NodeContext, image: Images, blur_radius: int, sigma: float) -> NodeOutput:
    return NodeOutput(([picture.filter(ImageFilter.GaussianBlur(sigma)) for picture in image],))


@node("EmptyImage")
def empty_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1, color: int = 0) -> NodeOutput:
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return NodeOutput(([Image.new("RGB", (width, height), rgb) for _ in range(batch_size)],))


@node("ImageBatch")
def image_batch(ctx: NodeContext, image1: Images, image2: Images) -> NodeOutput:
    size = image1[0].size
    return NodeOutput((image1 + [p if p.size == size else ops.resize(p, size, "bilinear", "center") for p in image2],))


@node("ImageToMask")
def image_to_mask(ctx: NodeContext, image: Images, channel: str) -> NodeOutput:
    band = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}[channel]
    return NodeOutput(([picture.convert("RGBA").getchannel(band) for picture in image],))


@node("MaskToImage")
def mask_to_image(ctx: NodeContext, mask: Images) -> NodeOutput:
    return NodeOutput(([picture.convert("RGB") for picture in mask],))


@node("GetImageSize")
def get_image_size(ctx: NodeContext, image: Images) -> NodeOutput:
    return NodeOutput((image[0].width, image[0].height, len(image)))
