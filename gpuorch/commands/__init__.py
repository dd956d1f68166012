"""Subcommands of `gpuorch` kept out of gpuorch/cli.py: jobs over the REST API, the GPU pool, the dead letters."""
