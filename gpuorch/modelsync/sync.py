"""The model sync: each declared file kept, verified or fetched, put in place atomically, and linked where ComfyUI
looks; what `gpuorch models sync` runs at every boot of the GPU instance (gpuorch-models-sync.service)."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import requests
from botocore.config import Config

from gpuorch.aws.clients import AwsClients, client_config
from gpuorch.aws.s3 import parse_s3_prefix, parse_s3_uri
from gpuorch.modelsync.cache import VerifiedCache, found
from gpuorch.modelsync.fetch import (PART_BYTES, HttpSource, RangeSource, S3Source, SourceMismatch, SourceUnavailable,
                                     fetch)
from gpuorch.modelsync.plan import FETCH, VERIFY, Layout, layout, needs
from gpuorch.settings import Settings
from gpuorch.workflows.models import ModelFile

__all__ = ["FAILED", "FETCHED", "KEPT", "VERIFIED", "ModelSync", "Outcome", "model_sync", "sha256_of", "source_opener"]

log = logging.getLogger(__name__)

# What became of a file.
KEPT = "kept"  # verified by an earlier sync and unchanged since
VERIFIED = "verified"  # already there with the right size, hashed now and found right
FETCHED = "fetched"
FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What the sync did with one file, how long it took, and why it failed if it did."""

    file: ModelFile
    done: str
    seconds: float
    fetched_bytes: int = 0
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.done != FAILED

    def __str__(self) -> str:
        if self.done == FAILED:
            return f"failed   {self.file.path}: {self.problem}"
        rate = f" ({self.fetched_bytes / self.seconds / 1e6:.0f} MB/s)" if self.fetched_bytes and self.seconds else ""
        return f"{self.done:<8} {self.file.path} ({self.file.bytes} bytes) in {self.seconds:.1f} s{rate}"


class ModelSync:
    """Brings declared files into a layout; `open_source` says where each one's bytes come from."""

    def __init__(self, layout: Layout, open_source: Callable[[ModelFile], RangeSource], *, concurrency: int,
                 part_bytes: int = PART_BYTES, clock: Callable[[], float] = time.monotonic):
        self.layout, self.open_source = layout, open_source
        self.concurrency, self.part_bytes, self.clock = concurrency, part_bytes, clock

    def run(self, files: Iterable[ModelFile]) -> list[Outcome]:
        cache = VerifiedCache(self.layout.store)
        outcomes = []
        for file in files:
            outcome = self._one(file, cache)
            (log.info if outcome.ok else log.error)("model sync: %s", outcome)
            outcomes.append(outcome)
        return outcomes

    def _one(self, file: ModelFile, cache: VerifiedCache) -> Outcome:
        started = self.clock()
        stored = self.layout.stored(file)
        fetched = 0
        try:
            action = needs(file, found(stored), cache.get(file.path))
            done = KEPT
            if action == VERIFY:
                state, sha256 = found(stored), sha256_of(stored)
                if sha256 == file.sha256:
                    cache.record(file.path, state, sha256)
                    done = VERIFIED
                else:
                    log.warning("model sync: %s holds sha256 %s, not the declared %s: fetching it again", stored,
                                sha256, file.sha256)
                    action = FETCH
            if action == FETCH:
                fetched = self._fetch(file, stored, cache)
                done = FETCHED
            if self.layout.linked:
                _link(self.layout.listed(file), stored)
        except (SourceUnavailable, SourceMismatch, OSError) as exc:
            return Outcome(file, FAILED, self.clock() - started, fetched, str(exc))
        return Outcome(file, done, self.clock() - started, fetched)

    def _fetch(self, file: ModelFile, stored: Path, cache: VerifiedCache) -> int:
        source = self.open_source(file)
        size = source.size()
        if size != file.bytes:
            raise SourceMismatch(f"{source.where} holds {size} bytes; the declaration says {file.bytes}")
        stored.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(stored.parent).free
        if free < size:
            raise OSError(errno.ENOSPC, f"{stored.parent} has {free} bytes free; {file.path} needs {size}")
        partial = stored.with_name(stored.name + ".partial")  # ComfyUI lists only known model extensions
        try:
            sha256 = fetch(source, partial, size, concurrency=self.concurrency, part_bytes=self.part_bytes)
            if sha256 != file.sha256:
                raise SourceMismatch(f"{source.where} holds sha256 {sha256}; the declaration says {file.sha256}")
            os.replace(partial, stored)  # in place only once verified: ComfyUI never lists a partial file
        finally:
            partial.unlink(missing_ok=True)
        cache.record(file.path, found(stored), sha256)
        return size


def _link(listed: Path, stored: Path) -> None:
    """Make `listed` a link to `stored`, replacing whatever was there (a volume copy, an older link) atomically."""
    if listed.is_symlink() and os.readlink(listed) == str(stored):
        return
    listed.parent.mkdir(parents=True, exist_ok=True)
    fresh = listed.with_name(listed.name + ".link")
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(stored)
    os.replace(fresh, listed)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def source_opener(s3, session: requests.Session, mirror: str) -> Callable[[ModelFile], RangeSource]:
    """Where each file is read from: the mirror (GPUORCH_MODELS_MIRROR) when there is one, else its source."""

    def open_source(file: ModelFile) -> RangeSource:
        if mirror:
            at = parse_s3_prefix(mirror)
            return S3Source(s3, at.bucket, "/".join(part for part in (at.key, file.folder, file.source_name) if part))
        if file.source.startswith("s3://"):
            uri = parse_s3_uri(file.source)
            return S3Source(s3, uri.bucket, uri.key)
        return HttpSource(session, file.source)

    return open_source


def model_sync(settings: Settings) -> ModelSync:
    """The sync the settings describe: their layout, sources and concurrency."""
    concurrency = settings.models_sync_concurrency
    # One connection per part in flight (botocore and urllib3 keep 10 by default).
    aws = AwsClients(settings, config=client_config(settings).merge(Config(max_pool_connections=concurrency)))
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=concurrency, pool_maxsize=concurrency)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    where = layout(settings.models_dir, settings.models_store, settings.instance_store_dir)
    return ModelSync(where, source_opener(aws.s3, session, settings.models_mirror), concurrency=concurrency)
