"""Errors raised while fetching and checking job inputs, split by whether a retry can help.

::

    InputError                                  every input-fetching error; ``reason`` says what, for the user
     ├── InputRejected     (RequestRefused)     permanent: the input itself is wrong (bad URI, refused address,
     │                                          too big, not an image, missing object)
     └── InputUnavailable  (Unavailable)        transient: timeout, throttling, a 5xx answer; it may work later
"""

from __future__ import annotations

from gpuorch.errors import GpuorchError, RequestRefused, Unavailable

__all__ = ["InputError", "InputRejected", "InputUnavailable"]


class InputError(GpuorchError):
    """Base class of every input-fetching error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InputRejected(InputError, RequestRefused):
    """The input can never be used as given."""


class InputUnavailable(InputError, Unavailable):
    """The input could not be fetched now; trying again later may work."""
