"""The emulator's settings: where its files live, which model files it pretends to have, how fast it runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

# The repository's copy of a real ComfyUI 0.8.0 catalogue, found relative to this package.
DEFAULT_OBJECT_INFO_PATH = Path(__file__).resolve().parents[3] / "configs" / "comfyui" / "object_info.json"

# What a real ComfyUI 0.8.0 answers in GET /features (and in its websocket feature_flags reply).
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024

EMULATOR_NAME = "gpuorch-comfyui-emulator"


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator needs; built once by its entry point (CLI or test) and passed down.

    ``model_files`` maps a ComfyUI model folder (``diffusion_models``, ``text_encoders``, ``vae``, ``loras``,
    ``checkpoints``, ``upscale_models``, ...) to the file names the emulator pretends to hold there; they
    fill the loaders' choice lists in ``/object_info`` and so decide what validation accepts.
    ``step_seconds`` is the simulated time of one sampler step (and of one upscale tile).
    """

    data_dir: Path
    object_info_path: Path = DEFAULT_OBJECT_INFO_PATH
    step_seconds: float = 0.05
    model_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8188
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    vram_total_bytes: int = 48 * 1024**3
    history_limit: int = 10_000

    def __post_init__(self) -> None:
        if self.step_seconds < 0:
            raise ValueError(f"step_seconds must be >= 0, got {self.step_seconds}")
        if self.history_limit < 1:
            raise ValueError(f"history_limit must be >= 1, got {self.history_limit}")
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "object_info_path", Path(self.object_info_path))
        frozen = {folder: tuple(names) for folder, names in self.model_files.items()}
        object.__setattr__(self, "model_files", MappingProxyType(frozen))

    @property
    def input_dir(self) -> Path:
        return self.data_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.data_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.data_dir / "temp"


def parse_model_files(specs: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Turn ``FOLDER=NAME`` command-line items into ``{folder: (name, ...)}``, keeping their order.

    >>> parse_model_files(["loras=a.safetensors", "vae=v.safetensors", "loras=b.safetensors"])
    {'loras': ('a.safetensors', 'b.safetensors'), 'vae': ('v.safetensors',)}
    """
    files: dict[str, list[str]] = {}
    for spec in specs:
        folder, sep, name = spec.partition("=")
        folder, name = folder.strip(), name.strip()
        if not sep or not folder or not name:
            raise ValueError(f"expected FOLDER=NAME, got {spec!r}")
        names = files.setdefault(folder, [])
        if name not in names:
            names.append(name)
    return {folder: tuple(names) for folder, names in files.items()}
