"""Deciding whether fetched bytes are an image ComfyUI may be given, before it ever sees them."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from gpuorch.inputs.errors import InputRejected

__all__ = ["DEFAULT_FORMATS", "ImageInfo", "decode_image", "inspect_image"]

# Only formats with plain, well-trodden decoders: Pillow would otherwise also open EPS (through
# Ghostscript), PSD, TGA and dozens more, each a parser an attacker could aim at.
DEFAULT_FORMATS = ("PNG", "JPEG", "WEBP")


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    frames: int = 1


def inspect_image(
    data: bytes, *, max_pixels: int, max_bytes: int, formats: tuple[str, ...] = DEFAULT_FORMATS, decode: bool = True
) -> ImageInfo:
    """Decode ``data`` fully and describe it, or raise InputRejected saying why it is refused; with ``decode``
    false, from its header alone (decode_image decodes it later).

    Dimensions are checked from the header before any pixel is decoded, so a small file that
    expands to gigabytes (a decompression bomb) is refused without the memory it asks for.
    """
    if len(data) > max_bytes:
        raise InputRejected(f"the image is {len(data)} bytes, over the limit of {max_bytes}")
    if not data:
        raise InputRejected("the input is empty")
    with _refusing_what_pillow_cannot_read(formats):
        with Image.open(io.BytesIO(data), formats=list(formats)) as image:
            width, height = image.size
            frames = int(getattr(image, "n_frames", 1) or 1)
            pixels = width * height * frames
            if width <= 0 or height <= 0:
                raise InputRejected(f"the image has no pixels ({width}x{height})")
            if pixels > max_pixels:
                raise InputRejected(
                    f"the image is {width}x{height}" + (f" x {frames} frames" if frames > 1 else "")
                    + f" = {pixels} pixels, over the limit of {max_pixels}"
                )
            if decode:
                image.load()  # decode now: a truncated or corrupt file fails here, not in ComfyUI
            kind = image.format or "unknown"
    return ImageInfo(format=kind, width=width, height=height, frames=frames)


def decode_image(data: bytes, formats: tuple[str, ...] = DEFAULT_FORMATS) -> None:
    """Decode every pixel of ``data``, which inspect_image(decode=False) has let through, or raise InputRejected: a
    truncated or corrupt file fails here, not in ComfyUI."""
    with _refusing_what_pillow_cannot_read(formats):
        with Image.open(io.BytesIO(data), formats=list(formats)) as image:
            image.load()


@contextmanager
def _refusing_what_pillow_cannot_read(formats: tuple[str, ...]) -> Iterator[None]:
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise InputRejected(f"the image is a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InputRejected(f"the input is not an image in an accepted format ({', '.join(formats)})") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's ways of saying "corrupt"
        raise InputRejected(f"the image could not be decoded: {exc}") from exc
