"""Pillow image operations behind the emulator's nodes: ComfyUI's size rules, and the marked stand-in render."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps

# ComfyUI's upscale_method names mapped to the nearest Pillow filter.
RESAMPLE: dict[str, Image.Resampling] = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

# FluxKontextImageScale's preferred (width, height) list, copied from ComfyUI's comfy_extras/nodes_flux.py.
KONTEXT_RESOLUTIONS: tuple[tuple[int, int], ...] = (
    (672, 1568),
    (688, 1504),
    (720, 1456),
    (752, 1392),
    (800, 1328),
    (832, 1248),
    (880, 1184),
    (944, 1104),
    (1024, 1024),
    (1104, 944),
    (1184, 880),
    (1248, 832),
    (1328, 800),
    (1392, 752),
    (1456, 720),
    (1504, 688),
    (1568, 672),
)

EMULATED_LABEL = "EMULATED - not a model output"
_MARK_COLOUR = (255, 0, 170)


def scale_to_size(width: int, height: int, target_width: int, target_height: int) -> tuple[int, int]:
    """ImageScale's target size: a zero side keeps the aspect ratio; both zero keeps the image as it is."""
    if target_width == 0 and target_height == 0:
        return width, height
    if target_width == 0:
        target_width = max(1, round(width * target_height / height))
    elif target_height == 0:
        target_height = max(1, round(height * target_width / width))
    return target_width, target_height


def scale_by_size(width: int, height: int, scale_by: float) -> tuple[int, int]:
    """ImageScaleBy's target size."""
    return round(width * scale_by), round(height * scale_by)


def total_pixels_size(width: int, height: int, megapixels: float, resolution_steps: int = 1) -> tuple[int, int]:
    """ImageScaleToTotalPixels' target size: about ``megapixels`` MiPx, sides rounded to ``resolution_steps``."""
    scale = math.sqrt(megapixels * 1024 * 1024 / (width * height))
    return (
        round(width * scale / resolution_steps) * resolution_steps,
        round(height * scale / resolution_steps) * resolution_steps,
    )


def max_dimension_size(width: int, height: int, largest_size: int) -> tuple[int, int]:
    """ImageScaleToMaxDimension's target size: the longer side becomes ``largest_size``."""
    if height > width:
        return round(width * largest_size / height), largest_size
    return largest_size, round(height * largest_size / width)


def kontext_size(width: int, height: int) -> tuple[int, int]:
    """FluxKontextImageScale's target: the preferred resolution closest in aspect ratio."""
    aspect = width / height
    _, best_width, best_height = min((abs(aspect - w / h), w, h) for w, h in KONTEXT_RESOLUTIONS)
    return best_width, best_height


def center_crop_box(width: int, height: int, target_width: int, target_height: int) -> tuple[int, int, int, int]:
    """The box ComfyUI's ``crop="center"`` keeps so that the source has the target's aspect ratio."""
    old_aspect, new_aspect = width / height, target_width / target_height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((width - width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((height - height * (old_aspect / new_aspect)) / 2)
    return x, y, width - x, height - y


def resize(image: Image.Image, size: tuple[int, int], method: str, crop: str = "disabled") -> Image.Image:
    """Resize one image like ComfyUI's ``common_upscale``."""
    if crop == "center":
        image = image.crop(center_crop_box(image.width, image.height, *size))
    if image.size == size:
        return image.copy()
    return image.resize(size, RESAMPLE[method])


def digest_images(images: Sequence[Image.Image]) -> str:
    """A content hash of a batch, used to derive deterministic stand-in renders."""
    hasher = hashlib.sha256()
    for image in images:
        hasher.update(f"{image.mode}{image.size}".encode())
        hasher.update(image.tobytes())
    return hasher.hexdigest()


def render_stand_in(base: Image.Image | None, size: tuple[int, int], key: str, strength: float) -> Image.Image:
    """What the emulator's sampler "generates": ``base`` tinted and blotched by a ``key``-seeded pattern.

    The same ``base``, ``key`` and ``strength`` always give the same pixels; ``strength`` (the denoise)
    decides how far the result moves away from ``base``. Without a base the pattern alone is the picture.
    """
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    blotches = Image.new("RGB", (8, 8))
    blotches.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64)])
    blotches = blotches.resize(size, Image.Resampling.BICUBIC)
    if base is None:
        return blotches
    picture = base.convert("RGB").resize(size, Image.Resampling.BICUBIC) if base.size != size else base.convert("RGB")
    tint = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    picture = Image.blend(picture, tint, 0.2 * strength)
    return Image.blend(picture, blotches, 0.3 * strength)


def mark_emulated(image: Image.Image, detail: str = "") -> Image.Image:
    """A copy of ``image`` with a magenta frame and a label, so nobody mistakes it for a model's output."""
    marked = image.convert("RGB")
    draw = ImageDraw.Draw(marked)
    width, height = marked.size
    border = max(1, min(width, height) // 64)
    draw.rectangle((0, 0, width - 1, height - 1), outline=_MARK_COLOUR, width=border)
    text = f"{EMULATED_LABEL} {detail}".strip()
    font = _label_font(max(8, height // 24))
    _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
    band = bottom - top + 2 * border
    if band < height // 2:
        draw.rectangle((0, 0, width - 1, band), fill=_MARK_COLOUR)
        draw.text((border + 1, border - top), text, fill=(255, 255, 255), font=font)
    return marked


def invert(image: Image.Image) -> Image.Image:
    return ImageOps.invert(image.convert("RGB"))


def _label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the fixed bitmap font still works.
        return ImageFont.load_default()
