"""Fetching one model file: parallel ranged GETs written in place, hashed in order as they arrive.

AWS's S3 performance guidelines: concurrent connections fetching different byte ranges of one object reach a
higher aggregate throughput than one request for the whole object; typical range sizes are 8 or 16 MB. Hashing
while the parts arrive (each part read back once the parts before it are in, from the page cache) hides the
sha256 of a 20 GB file behind its download instead of adding a second pass over it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import requests
from botocore.exceptions import BotoCoreError, ClientError, IncompleteReadError
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from gpuorch.aws.failures import is_transient
from gpuorch.errors import ConfigurationError, Unavailable

__all__ = ["PART_BYTES", "HttpSource", "RangeSource", "S3Source", "SourceMismatch", "SourceUnavailable", "fetch",
           "parts"]

log = logging.getLogger(__name__)

PART_BYTES = 16 * 2**20
CHUNK_BYTES = 2**20
HASH_READ_BYTES = 8 * 2**20
# Each part is one request; botocore already retried its call, but not a body cut off half-way.
PART_ATTEMPTS = 4


class SourceUnavailable(Unavailable):
    """A model file's source could not be read; `retryable` when its answer said "not now" (429, 5xx, cut short)."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class SourceMismatch(ConfigurationError):
    """A model file's source holds other bytes than its declaration says (another size, another sha256)."""


class RangeSource(Protocol):
    """Where one model file's bytes come from."""

    where: str

    def size(self) -> int:
        """The object's size in bytes."""

    def ranged(self) -> bool:
        """Whether it serves byte ranges (else it is read in one GET)."""

    def read(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes [start, end) in chunks."""


class S3Source:
    """An S3 object, read with GetObject byte ranges."""

    def __init__(self, s3, bucket: str, key: str):
        self.s3, self.bucket, self.key = s3, bucket, key
        self.where = f"s3://{bucket}/{key}"

    def size(self) -> int:
        try:
            return int(self.s3.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"])
        except (ClientError, BotoCoreError) as exc:
            raise SourceUnavailable(f"{self.where}: {exc}") from exc

    def ranged(self) -> bool:
        return True

    def read(self, start: int, end: int) -> Iterator[bytes]:
        body = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}")["Body"]
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()


class HttpSource:
    """An https:// URL (a Hugging Face file, say), read with HTTP Range requests when its server serves them."""

    def __init__(self, session: requests.Session, url: str, timeout: float = 60.0):
        self.session, self.url, self.timeout = session, url, timeout
        self.where = url
        self._head: requests.Response | None = None

    def _probe(self) -> requests.Response:
        if self._head is None:
            try:
                answer = self.session.head(self.url, allow_redirects=True, timeout=self.timeout)
            except requests.RequestException as exc:
                raise SourceUnavailable(f"{self.url}: {exc}") from exc
            _raise_for_status(answer, self.url)
            self._head = answer
        return self._head

    def size(self) -> int:
        length = self._probe().headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise SourceUnavailable(f"{self.url} does not say its size (no Content-Length)")
        return int(length)

    def ranged(self) -> bool:
        return self._probe().headers.get("Accept-Ranges", "").lower() == "bytes"

    def read(self, start: int, end: int) -> Iterator[bytes]:
        # The URL each time, not where it redirected: a CDN's signed redirect may expire during a long download.
        headers = {"Range": f"bytes={start}-{end - 1}"} if self.ranged() else {}
        with self.session.get(self.url, headers=headers, stream=True, timeout=self.timeout) as answer:
            _raise_for_status(answer, self.url)
            served = answer.headers.get("Content-Range", "")
            if headers and (answer.status_code != 206 or not served.startswith(f"bytes {start}-{end - 1}/")):
                raise SourceUnavailable(f"{self.url} answered {answer.status_code} {served!r} to a Range request for "
                                        f"{start}-{end - 1}")
            yield from answer.iter_content(CHUNK_BYTES)


def _raise_for_status(answer: requests.Response, url: str) -> None:
    if answer.status_code >= 400:
        raise SourceUnavailable(f"{url} answered {answer.status_code} {answer.reason}",
                                retryable=answer.status_code == 429 or answer.status_code >= 500)


def _transient(exc: BaseException) -> bool:
    """Whether one part's failure may pass if the part is fetched again."""
    if isinstance(exc, SourceUnavailable):
        return exc.retryable
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return True
    # An S3 body cut off half-way: IncompleteReadError; is_transient covers the rest (unreachable, timed out, a
    # stream reset: HTTPClientError; throttled or failing: by the answer's code).
    return is_transient(exc) or isinstance(exc, IncompleteReadError)


def parts(size: int, part_bytes: int) -> list[tuple[int, int]]:
    """[start, end) of each part of an object of `size` bytes (none for an empty one)."""
    return [(start, min(start + part_bytes, size)) for start in range(0, size, part_bytes)]


def fetch(source: RangeSource, target: Path, size: int, *, concurrency: int, part_bytes: int = PART_BYTES,
          retry_wait_s: float = 0.5) -> str:
    """Write the `size` bytes of `source` into `target` (created or truncated) and return their sha256.

    The parts are fetched `concurrency` at a time and written where they belong; this thread hashes them in order
    as they complete. A part is fetched again after a transient failure (waiting `retry_wait_s`, then twice as long
    each time); the first part that still fails after PART_ATTEMPTS stops the fetch (SourceUnavailable).
    """
    spans = parts(size, part_bytes if source.ranged() else max(size, 1))
    digest = hashlib.sha256()
    writer = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    reader = None
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="model-part")
    try:
        os.ftruncate(writer, size)
        reader = os.open(target, os.O_RDONLY)
        futures: list[Future] = [pool.submit(_fetch_part, source, writer, start, end, retry_wait_s)
                                 for start, end in spans]
        for (start, end), future in zip(spans, futures):
            future.result()
            _hash_range(reader, start, end, digest)
        os.fsync(writer)
    except SourceUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever stopped a part, the fetch failed for that reason
        raise SourceUnavailable(f"{source.where}: {type(exc).__name__}: {exc}") from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        os.close(writer)
        if reader is not None:
            os.close(reader)
    return digest.hexdigest()


def _fetch_part(source: RangeSource, fd: int, start: int, end: int, retry_wait_s: float) -> None:
    retrying = Retrying(retry=retry_if_exception(_transient), stop=stop_after_attempt(PART_ATTEMPTS),
                        wait=wait_exponential(multiplier=retry_wait_s, max=10), reraise=True,
                        before_sleep=before_sleep_log(log, logging.WARNING))
    for attempt in retrying:
        with attempt:
            offset = start
            for chunk in source.read(start, end):
                os.pwrite(fd, chunk, offset)
                offset += len(chunk)
            if offset != end:
                raise SourceUnavailable(f"{source.where}: bytes {start}-{end - 1} ended after {offset - start} bytes",
                                        retryable=True)


def _hash_range(fd: int, start: int, end: int, digest) -> None:
    offset = start
    while offset < end:
        chunk = os.pread(fd, min(HASH_READ_BYTES, end - offset), offset)
        if not chunk:
            raise SourceUnavailable(f"the file ended at {offset} bytes while hashing up to {end}")
        digest.update(chunk)
        offset += len(chunk)
