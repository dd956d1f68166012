"""How fast `gpuorch models sync` brings a model file from S3, beside a plain single download of the same object.

A moto server (a process of its own, on loopback) holds one object of random bytes. Each round, in turn:
- the sync as shipped (gpuorch/modelsync/: GPUORCH_MODELS_SYNC_CONCURRENCY ranged GETs of 16 MiB in flight,
  written in place, hashed in order as they arrive, verified, moved into place) into an empty models folder;
- a plain single download: one GetObject streamed to a file, hashed on the way;
- boto3's S3 transfer manager (download_file) with the same concurrency and part size, then a sha256 pass over the
  file: the library the sync could have used instead of its own ranged parts.
Then the next boot: the same sync again over the files it left, which the cache keeps without rehashing.

Each figure is the median over the rounds, in MB/s (10^6 bytes). Last line: `models sync <MB/s> single <MB/s> ratio
<r>`. moto answers every ranged GET by reading the whole object under one lock per object, so on moto the ranged
GETs cost more than they save; on S3, concurrent ranged GETs are how one object reaches more than one connection's
throughput (AWS, "Best practices design patterns: optimizing Amazon S3 performance": typical ranges of 8 or 16 MB).
`--quick` is a small run that tests/bench/test_benches.py makes, so the bench keeps working; its figures mean little.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuorch.modelsync.fetch import PART_BYTES  # noqa: E402
from gpuorch.modelsync.sync import FETCHED, KEPT, model_sync  # noqa: E402
from gpuorch.settings import Settings  # noqa: E402
from gpuorch.workflows.models import ModelFile  # noqa: E402
from gpuorch_dev.local.stack import LocalStack, use_local_credentials  # noqa: E402

BUCKET = "gpuorch-bench-models"
KEY = "published/model.safetensors"


def single_download(s3, target: Path) -> str:
    """One GetObject, streamed to `target` and hashed on the way."""
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"]
    with open(target, "wb") as stream:
        for chunk in body.iter_chunks(2**20):
            stream.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def transfer_manager(s3, target: Path, concurrency: int) -> str:
    """boto3's download_file with the sync's concurrency and part size, then the hash the sync does on the way."""
    s3.download_file(BUCKET, KEY, str(target), Config=TransferConfig(
        max_concurrency=concurrency, multipart_chunksize=PART_BYTES, multipart_threshold=PART_BYTES))
    digest = hashlib.sha256()
    with open(target, "rb") as stream:
        while chunk := stream.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=512, help="size of the object in MiB [512]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three downloads [3]")
    parser.add_argument("--quick", action="store_true", help="32 MiB, one round: only checks that the bench runs")
    args = parser.parse_args(argv)
    size_mib, rounds = (32, 1) if args.quick else (args.mib, args.rounds)
    size = size_mib * 2**20
    use_local_credentials()

    with (tempfile.TemporaryDirectory(prefix="gpuorch-bench-models-") as tmp,
          LocalStack(run_dir=Path(tmp) / "logs") as stack):
        endpoint = stack.start_moto()
        settings = dataclasses.replace(Settings.from_env({}), aws_endpoint_url=endpoint)
        concurrency = settings.models_sync_concurrency
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=settings.region,
                          config=Config(max_pool_connections=concurrency))
        s3.create_bucket(Bucket=BUCKET)
        data = os.urandom(size)
        sha256 = hashlib.sha256(data).hexdigest()
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=data)
        del data
        file = ModelFile("diffusion_models", "model.safetensors", size, sha256, f"s3://{BUCKET}/{KEY}",
                         "model.safetensors", ("bench",))
        print(f"one object of {size_mib} MiB on moto at {endpoint}; {concurrency} ranged GETs of "
              f"{PART_BYTES // 2**20} MiB in flight; {rounds} round(s)")

        rates: dict[str, list[float]] = {"sync": [], "single": [], "transfer manager": []}
        kept_s: list[float] = []
        for n in range(rounds):
            models = Path(tmp) / f"models-{n}"
            at_boot = dataclasses.replace(settings, models_dir=str(models))
            seconds, outcomes = timed(lambda: model_sync(at_boot).run([file]))
            assert [o.done for o in outcomes] == [FETCHED], [str(o) for o in outcomes]
            rates["sync"].append(size / seconds / 1e6)
            again, outcomes = timed(lambda: model_sync(at_boot).run([file]))
            assert [o.done for o in outcomes] == [KEPT], [str(o) for o in outcomes]
            kept_s.append(again)

            seconds, digest = timed(lambda: single_download(s3, Path(tmp) / "single"))
            assert digest == sha256
            rates["single"].append(size / seconds / 1e6)
            seconds, digest = timed(lambda: transfer_manager(s3, Path(tmp) / "transfer", concurrency))
            assert digest == sha256
            rates["transfer manager"].append(size / seconds / 1e6)
            for path in (Path(tmp) / "single", Path(tmp) / "transfer"):
                path.unlink()
            print(f"round {n + 1}: " + ", ".join(f"{name} {values[-1]:.0f} MB/s" for name, values in rates.items()),
                  flush=True)

    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"transfer manager {median['transfer manager']:.0f} MB/s (same concurrency and part size, then hashed)")
    print(f"next boot: the {size_mib} MiB file kept without rehashing in {statistics.median(kept_s) * 1000:.0f} ms")
    print(f"models sync {median['sync']:.0f} single {median['single']:.0f} "
          f"ratio {median['sync'] / median['single']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
