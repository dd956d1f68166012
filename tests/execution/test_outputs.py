"""Outputs as a job asked for them: converted to its format with its quality, other files kept, small ones inline."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from gpuorch.execution.outputs import InlineBudget, as_stored
from gpuorch.jobs.options import OutputOptions


def png(mode: str = "RGB", size=(64, 48)) -> bytes:
    image = Image.new(mode, size, (200, 90, 60, 128) if mode == "RGBA" else (200, 90, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_a_png_asked_for_as_png_is_stored_byte_for_byte():
    data = png()
    stored = as_stored(data, "ComfyUI_00001_.png", OutputOptions())
    assert (stored.data, stored.filename, stored.content_type) == (data, "ComfyUI_00001_.png", "image/png")


@pytest.mark.parametrize(("options", "filename", "content_type", "pillow_format"), [
    (OutputOptions("jpeg"), "ComfyUI_00001_.jpg", "image/jpeg", "JPEG"),
    (OutputOptions("webp", 80), "ComfyUI_00001_.webp", "image/webp", "WEBP"),
])
def test_an_image_is_converted_renamed_and_typed(options, filename, content_type, pillow_format):
    stored = as_stored(png(), "ComfyUI_00001_.png", options)
    assert (stored.filename, stored.content_type) == (filename, content_type)
    image = opened(stored.data)
    assert (image.format, image.size) == (pillow_format, (64, 48))


def test_a_lower_quality_makes_a_smaller_file():
    noisy = Image.effect_noise((256, 256), 60).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    sizes = [len(as_stored(buffer.getvalue(), "a.png", OutputOptions("jpeg", q)).data) for q in (30, 95)]
    assert sizes[0] < sizes[1]


def test_jpeg_shows_transparency_on_white():
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    buffer = io.BytesIO()
    transparent.save(buffer, format="PNG")
    stored = as_stored(buffer.getvalue(), "a.png", OutputOptions("jpeg"))
    assert opened(stored.data).convert("RGB").getpixel((4, 4)) >= (250, 250, 250)


def test_webp_keeps_transparency():
    stored = as_stored(png("RGBA"), "a.png", OutputOptions("webp"))
    assert opened(stored.data).mode == "RGBA"


def test_a_file_that_is_not_an_image_is_stored_as_it_came():
    stored = as_stored(b"frame data", "clip.mp4", OutputOptions("webp"))
    assert (stored.data, stored.filename, stored.content_type) == (b"frame data", "clip.mp4", "video/mp4")


def test_inline_outputs_share_one_budget_in_the_order_they_are_stored():
    budget = InlineBudget(OutputOptions(inline=True), limit=10)
    assert base64.b64decode(budget.take(b"123456")) == b"123456"
    assert budget.take(b"12345") is None  # 5 more would pass the 10
    assert budget.take(b"1234") == base64.b64encode(b"1234").decode()
    assert InlineBudget(OutputOptions(), limit=10).take(b"1") is None  # not asked for
