"""A local stand-in for a ComfyUI server that speaks its HTTP and websocket protocol."""

from gpuorch.comfyui.emulator.config import EmulatorConfig, parse_model_files
from gpuorch.comfyui.emulator.executor import ExecutionHooks
from gpuorch.comfyui.emulator.instance import Emulator
from gpuorch.comfyui.emulator.runner import RunningEmulator, start_in_thread, start_site
from gpuorch.comfyui.emulator.server import EMULATOR_KEY, create_app

__all__ = [
    "EMULATOR_KEY",
    "Emulator",
    "EmulatorConfig",
    "ExecutionHooks",
    "RunningEmulator",
    "create_app",
    "parse_model_files",
    "start_in_thread",
    "start_site",
]
