"""gpuorch: ComfyUI jobs on an on-demand AWS GPU, through Celery on SQS."""

__version__ = "0.1.0"
