"""Command line: ``python -m gpuorch_dev.emulator --port 8188 --data-dir DIR`` serves a ComfyUI emulator."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gpuorch_dev.emulator.config import DEFAULT_OBJECT_INFO_PATH, EmulatorConfig, parse_model_files
from gpuorch_dev.emulator.emulator_routes import emulator_stats_document
from gpuorch_dev.emulator.runner import start_site
from gpuorch_dev.emulator.server import EMULATOR_KEY, create_app

logger = logging.getLogger("gpuorch_dev.emulator")
# Under --data-dir, written at a clean shutdown: GET /emulator/stats's last answer.
STATS_FILE = "stats.json"


def parse_args(argv: Sequence[str] | None = None) -> EmulatorConfig:
    parser = argparse.ArgumentParser(
        prog="python -m gpuorch_dev.emulator",
        description="A local stand-in for a ComfyUI server (HTTP + websocket). Model nodes are simulated.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188, help="0 picks a free port (logged at start)")
    parser.add_argument("--data-dir", type=Path, required=True, help="holds the input/, output/ and temp/ folders")
    parser.add_argument("--step-seconds", type=float, default=0.05, help="simulated time of one sampler step")
    parser.add_argument(
        "--model-file",
        action="append",
        default=[],
        metavar="FOLDER=NAME",
        help="a model file to pretend to have, e.g. loras=camera.safetensors (repeatable)",
    )
    parser.add_argument(
        "--object-info",
        type=Path,
        default=DEFAULT_OBJECT_INFO_PATH,
        help="the node catalogue to serve (default: the repository's ComfyUI 0.8.0 capture)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        model_files = parse_model_files(args.model_file)
        return EmulatorConfig(
            data_dir=args.data_dir,
            object_info_path=args.object_info,
            step_seconds=args.step_seconds,
            model_files=model_files,
            host=args.host,
            port=args.port,
        )
    except ValueError as exc:
        parser.error(str(exc))
        raise  # parser.error exits; this line keeps type checkers content


async def serve(config: EmulatorConfig) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(config)
    runner, _ = await start_site(app, config.host, config.port)
    try:
        await stop.wait()
        logger.info("ComfyUI emulator shutting down")
    finally:
        await runner.cleanup()
        # What ran here outlives the process: the local GPU host stops its emulator with the instance.
        stats = json.dumps(emulator_stats_document(app[EMULATOR_KEY]))
        (config.data_dir / STATS_FILE).write_text(stats)


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
