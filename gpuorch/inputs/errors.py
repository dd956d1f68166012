"""Errors raised while fetching and checking job inputs, split by whether a retry can help.

::

    InputError
     ├── InputRejected      permanent: the input itself is wrong (bad URI, refused address, too big,
     │                      not an image, missing object); ``reason`` says what, in words for the user
     └── InputUnavailable   transient: timeout, throttling, a 5xx answer; the same input may work later
"""

from __future__ import annotations

__all__ = ["InputError", "InputRejected", "InputUnavailable"]


class InputError(Exception):
    """Base class of every input-fetching error."""

    retryable = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InputRejected(InputError):
    """The input can never be used as given."""


class InputUnavailable(InputError):
    """The input could not be fetched now; trying again later may work."""

    retryable = True
