"""Errors a gpuorch caller sees: an invalid request, and a job that ended in failure.

    GpuorchError
    ├── ParamsInvalid   the request was refused before anything was queued (field -> reasons)
    │   └── InputTooLarge   ... because an inline image has more bytes than GPUORCH_MAX_INPUT_BYTES
    ├── JobFailed       the job ran and failed; its record says why
    └── JobCancelled    the job was cancelled before it finished
"""

from __future__ import annotations


class GpuorchError(Exception):
    """Base of the errors gpuorch raises to its callers."""


class ParamsInvalid(GpuorchError, ValueError):
    """A job request that fails validation; nothing was recorded or queued."""

    def __init__(self, errors: dict):
        self.errors = errors
        super().__init__(f"invalid job request: {errors}")


class InputTooLarge(ParamsInvalid):
    """A job request with an inline image over the byte limit (the API answers 413); `too_large` names those
    fields, `errors` every refused field."""

    def __init__(self, errors: dict, too_large: list[str]):
        super().__init__(errors)
        self.too_large = too_large


class UnknownWorkflow(GpuorchError, LookupError):
    """No workflow of that name is registered."""


class JobFailed(GpuorchError):
    """Raised by a GPU task (and so by `AsyncResult.get()`) when its job failed; the message is the reason."""


class JobCancelled(GpuorchError):
    """Raised by a GPU task (and so by `AsyncResult.get()`) when its job was cancelled."""


class JobDeferred(GpuorchError):
    """A job that cannot go on now (its record unreachable or missing): its message goes back to the queue."""
