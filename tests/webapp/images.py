"""Images for the upload tests: real encoded files of chosen formats, sizes and byte counts."""

from __future__ import annotations

import base64
import io

from PIL import Image, PngImagePlugin


def encode(fmt: str, size: tuple[int, int] = (16, 12), colour: tuple[int, int, int] = (200, 100, 50)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def png_of_exactly(size: int) -> bytes:
    """A valid 4x4 PNG padded with a text chunk to exactly ``size`` bytes."""
    bare = len(encode("PNG", (4, 4)))
    # A tEXt chunk adds its 12 bytes of framing, the key, a NUL separator and the text.
    text = size - bare - 12 - len("pad") - 1
    if text < 0:
        raise ValueError(f"a PNG cannot be smaller than {bare + 16} bytes")
    info = PngImagePlugin.PngInfo()
    info.add_text("pad", "x" * text)
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(out, format="PNG", pnginfo=info)
    assert len(out.getvalue()) == size
    return out.getvalue()


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"
