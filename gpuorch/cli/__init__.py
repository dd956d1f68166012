"""The `gpuorch` command and its subcommands."""
