"""A local stand-in for a ComfyUI server that speaks its HTTP and websocket protocol."""

from gpuorch_dev.emulator.config import EmulatorConfig, parse_model_files
from gpuorch_dev.emulator.executor import ChainedHooks, ExecutionHooks
from gpuorch_dev.emulator.faults import FaultSpec, FaultSpecError, parse_fault
from gpuorch_dev.emulator.instance import EMULATOR_KEY, Emulator
from gpuorch_dev.emulator.runner import RunningEmulator, start_in_thread, start_site
from gpuorch_dev.emulator.server import create_app

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
