"""A local stand-in for a ComfyUI server that speaks its HTTP and websocket protocol."""

from gpuorch.comfyui.emulator.config import EmulatorConfig, parse_model_files
from gpuorch.comfyui.emulator.executor import ChainedHooks, ExecutionHooks
from gpuorch.comfyui.emulator.faults import FaultSpec, FaultSpecError, parse_fault
from gpuorch.comfyui.emulator.instance import EMULATOR_KEY, Emulator
from gpuorch.comfyui.emulator.runner import RunningEmulator, start_in_thread, start_site
from gpuorch.comfyui.emulator.server import create_app

__all__ = [
    "EMULATOR_KEY",
    "ChainedHooks",
    "Emulator",
    "EmulatorConfig",
    "ExecutionHooks",
    "FaultSpec",
    "FaultSpecError",
    "RunningEmulator",
    "create_app",
    "parse_fault",
    "parse_model_files",
    "start_in_thread",
    "start_site",
]
