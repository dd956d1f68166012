"""The limits that govern fetching job inputs, from the settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gpuorch.settings import Settings

__all__ = ["InputPolicy"]


@dataclass(frozen=True)
class InputPolicy:
    """What may be fetched, and how much.

    ``allow_insecure_local`` is for tests and the local stack only: it admits ``http://`` URLs and
    loopback addresses. Every other non-public address stays refused even then.
    """

    allowed_buckets: frozenset[str] = field(default_factory=frozenset)
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_redirects: int = 3
    allow_insecure_local: bool = False
    ca_certs: str | None = None  # a CA bundle to trust instead of certifi's (private PKI, tests)

    def __post_init__(self) -> None:
        # Accept any iterable of names, but keep the frozen set that membership tests need.
        buckets: Iterable[str] = self.allowed_buckets
        object.__setattr__(self, "allowed_buckets", frozenset(buckets))
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("max_bytes and max_pixels must be positive")
        if min(self.connect_timeout, self.read_timeout, self.total_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects cannot be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> "InputPolicy":
        """The job bucket and GPUORCH_INPUT_BUCKETS, the size limits, and GPUORCH_ALLOW_INSECURE_INPUTS."""
        return cls(
            allowed_buckets=(settings.bucket, *settings.input_buckets),
            max_bytes=settings.max_input_bytes,
            max_pixels=settings.max_input_pixels,
            allow_insecure_local=settings.allow_insecure_inputs,
        )
