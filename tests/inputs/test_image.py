"""inspect_image: only real, bounded images in accepted formats get through."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from gpuorch.inputs import ImageInfo, InputRejected, inspect_image


def encode(fmt: str, size: tuple[int, int] = (16, 12), **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(out, format=fmt, **save)
    return out.getvalue()


def truncated_png() -> bytes:
    """A PNG cut in the middle of its pixel data (noise, so the data does not compress away)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (32, 32), bytes((i * 97) % 251 for i in range(32 * 32 * 3))).save(out, format="PNG")
    return out.getvalue()[: len(out.getvalue()) // 2]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height``: tiny on disk, huge once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def animated_webp(frames: int, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    images = [Image.new("RGB", size, (i * 20, 0, 0)) for i in range(frames)]
    images[0].save(out, format="WEBP", save_all=True, append_images=images[1:])
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (encode("PNG"), ImageInfo("PNG", 16, 12)),
        (encode("JPEG"), ImageInfo("JPEG", 16, 12)),
        (encode("WEBP"), ImageInfo("WEBP", 16, 12)),
        (encode("PNG", (100, 1)), ImageInfo("PNG", 100, 1)),
        (animated_webp(3, (10, 10)), ImageInfo("WEBP", 10, 10, frames=3)),
    ],
)
def test_accepted_images(data: bytes, expected: ImageInfo) -> None:
    assert inspect_image(data, max_pixels=10_000, max_bytes=1_000_000) == expected


@pytest.mark.parametrize(
    ("data", "max_pixels", "max_bytes", "reason"),
    [
        (b"", 10_000, 1000, "empty"),
        (b"<html>not an image</html>", 10_000, 1000, "not an image in an accepted format"),
        (encode("GIF"), 10_000, 100_000, "not an image in an accepted format"),
        (encode("BMP"), 10_000, 100_000, "not an image in an accepted format"),
        (encode("PNG", (101, 100)), 10_000, 100_000, "101x100 = 10100 pixels, over the limit of 10000"),
        (animated_webp(4, (50, 50)), 9_999, 100_000, "50x50 x 4 frames = 10000 pixels"),
        (encode("PNG"), 10_000, 10, "over the limit of 10"),
        (truncated_png(), 10_000, 100_000, "could not be decoded"),
        (png_header_only(9_000, 9_000), 10_000, 100_000, "9000x9000 = 81000000 pixels"),
        # With a lax pixel limit, Pillow's own bomb guard still refuses it before decoding.
        (png_header_only(50_000, 50_000), 10**12, 100_000, "decompression bomb"),
    ],
)
def test_refused_images(data: bytes, max_pixels: int, max_bytes: int, reason: str) -> None:
    with pytest.raises(InputRejected) as caught:
        inspect_image(data, max_pixels=max_pixels, max_bytes=max_bytes)
    assert reason in caught.value.reason


def test_formats_can_be_widened_explicitly() -> None:
    info = inspect_image(encode("GIF"), max_pixels=10_000, max_bytes=100_000, formats=("GIF",))
    assert info.format == "GIF"
