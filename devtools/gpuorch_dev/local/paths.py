"""Where the local stack finds what it runs: the checkout it is installed from (an editable install)."""

from __future__ import annotations

from pathlib import Path

# devtools/gpuorch_dev/local/paths.py -> the checkout: its Procfile is the list of processes the stack starts.
CHECKOUT = Path(__file__).resolve().parents[3]
PROCFILE = CHECKOUT / "Procfile"
# Each run's logs and data, under a folder named after its start.
RUNS = CHECKOUT / ".local-stack"
# The picture the local stack's sample jobs edit (package data of the dev tools).
SAMPLE_IMAGE = Path(__file__).resolve().parent / "sample-house.png"
