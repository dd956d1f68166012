"""A job's outputs as it asked for them: images converted to its output format on the GPU host before upload, and
the small ones also carried inline (base64) in the record, within the record's budget."""

from __future__ import annotations

import base64
import io
import mimetypes
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError

from gpuorch.jobs.options import MAX_INLINE_BYTES, OutputOptions

# Pillow's name of each format a job may ask for.
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# JPEG has no alpha: a transparent pixel is shown on white, as a browser would show the PNG.
_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class OutputFile:
    """One output as stored: its bytes, file name and content type."""

    data: bytes
    filename: str
    content_type: str


def as_stored(data: bytes, filename: str, options: OutputOptions) -> OutputFile:
    """The output `filename` (as ComfyUI wrote it) in the job's output format. An image already in that format is
    kept byte for byte; a file that is not an image Pillow reads (a video, a text) is stored as it came."""
    kept = OutputFile(data, filename, mimetypes.guess_type(filename)[0] or "application/octet-stream")
    try:
        image = Image.open(io.BytesIO(data))
        image_format = image.format
    except (UnidentifiedImageError, OSError):
        return kept
    if image_format == _PILLOW_FORMATS[options.format]:
        return OutputFile(data, _renamed(filename, options.extension), options.content_type)
    buffer = io.BytesIO()
    if options.format == "jpeg":
        _flattened(image).save(buffer, format="JPEG", quality=options.effective_quality)
    elif options.format == "webp":
        image.save(buffer, format="WEBP", quality=options.effective_quality)
    else:
        image.save(buffer, format="PNG")
    return OutputFile(buffer.getvalue(), _renamed(filename, options.extension), options.content_type)


def _flattened(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _renamed(filename: str, extension: str) -> str:
    return str(PurePosixPath(filename).with_suffix(f".{extension}"))


class InlineBudget:
    """What is left of MAX_INLINE_BYTES for one job's inline outputs, taken in the order they are stored."""

    def __init__(self, options: OutputOptions, limit: int = MAX_INLINE_BYTES):
        self.left = limit if options.inline else 0

    def take(self, data: bytes) -> str | None:
        """The output as base64 when it fits what is left (which it then uses); None otherwise."""
        if not data or len(data) > self.left:
            return None
        self.left -= len(data)
        return base64.b64encode(data).decode("ascii")
