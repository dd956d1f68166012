"""Job-arrival traces (CSV `arrival_s,gpu_s`, optionally `,priority,ttl_s`): reading, writing, and the seeded
reference generators."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from gpuorch.errors import ConfigurationError

TRACES_DIR = Path(__file__).resolve().parent / "traces"
HEADER = ("arrival_s", "gpu_s")
# A trace may also give each job its priority (normal or low) and time to live (seconds, empty: none).
FULL_HEADER = (*HEADER, "priority", "ttl_s")
PRIORITIES = ("normal", "low")
DAY_S = 86400.0
HOUR_S = 3600.0

# GPU seconds of one job on an L40S: a camera-angle move (8-step Lightning, the multiple-angles LoRA)
# takes about 20-40 s, an image edit (4-step Lightning, one to three images) about 10-25 s.
CAMERA_ANGLE_GPU_S = (20.0, 40.0)
IMAGE_EDIT_GPU_S = (10.0, 25.0)


class TraceError(ConfigurationError, ValueError):
    """A trace file that cannot be read as `arrival_s,gpu_s` rows."""


@dataclass(frozen=True, order=True)
class Job:
    """One job of a trace: when it is submitted (seconds from the trace's start) and its GPU seconds; its priority,
    and the seconds after its arrival by which it must have started (else it expires, never run)."""

    arrival_s: float
    gpu_s: float
    priority: str = field(default="normal", compare=False)
    ttl_s: float | None = field(default=None, compare=False)


def job_gpu_s(rng: random.Random, camera_share: float = 0.5) -> float:
    low, high = CAMERA_ANGLE_GPU_S if rng.random() < camera_share else IMAGE_EDIT_GPU_S
    return rng.uniform(low, high)


def _jobs(arrivals: Iterable[float], rng: random.Random) -> list[Job]:
    return sorted(Job(round(a, 1), round(job_gpu_s(rng), 1)) for a in arrivals)


def steady(seed: int = 1, days: int = 2, per_hour: float = 30.0) -> list[Job]:
    """Jobs around the clock, a Poisson stream of `per_hour` jobs an hour (about 20% GPU load)."""
    rng = random.Random(seed)
    arrivals, t = [], rng.expovariate(per_hour / HOUR_S)
    while t < days * DAY_S:
        arrivals.append(t)
        t += rng.expovariate(per_hour / HOUR_S)
    return _jobs(arrivals, rng)


def bursty(seed: int = 2, days: int = 5, bursts_per_hour: float = 1.5, open_h: float = 9.0,
           close_h: float = 18.0, burst_jobs: tuple[int, int] = (3, 25), think_s: float = 60.0) -> list[Job]:
    """Business-hours sessions over `days` weekdays: user sessions start as a Poisson stream of
    `bursts_per_hour` between `open_h` and `close_h`, nothing at night. A session is one user's
    burst of `burst_jobs` jobs, submitted `think_s` apart on average: about a minute, the time to look
    at a result (which takes 10-40 s of GPU) and ask for the next edit; sessions overlap freely."""
    rng = random.Random(seed)
    arrivals = []
    for day in range(days):
        t = day * DAY_S + open_h * HOUR_S + rng.expovariate(bursts_per_hour / HOUR_S)
        while t < day * DAY_S + close_h * HOUR_S:
            at = t
            for _ in range(rng.randint(*burst_jobs)):
                arrivals.append(at)
                at += rng.expovariate(1.0 / think_s)
            t += rng.expovariate(bursts_per_hour / HOUR_S)
    return _jobs(arrivals, rng)


def sparse_nightly(seed: int = 3, days: int = 7, daytime_jobs: tuple[int, int] = (2, 6),
                   batch_jobs: tuple[int, int] = (30, 60), batch_h: float = 2.0) -> list[Job]:
    """A few lone jobs at random daytime hours (08:00-20:00) each day, and a nightly batch of
    `batch_jobs` jobs submitted by a script within a minute of `batch_h` o'clock."""
    rng = random.Random(seed)
    arrivals = []
    for day in range(days):
        base = day * DAY_S
        arrivals += [base + rng.uniform(8 * HOUR_S, 20 * HOUR_S) for _ in range(rng.randint(*daytime_jobs))]
        start = base + batch_h * HOUR_S + rng.uniform(-600.0, 600.0)
        arrivals += [start + rng.uniform(0.0, 60.0) for _ in range(rng.randint(*batch_jobs))]
    return _jobs(arrivals, rng)


def office(seed: int = 4, weeks: int = 4, sessions_per_hour: float = 1.2, open_h: float = 9.0,
           close_h: float = 18.0, lunch: tuple[float, float] = (12.0, 13.0), lunch_share: float = 0.3,
           session_jobs: tuple[int, int] = (3, 20), think_s: float = 60.0) -> list[Job]:
    """An office's four weeks: sessions as in `bursty` on weekdays between `open_h` and `close_h`, fewer over
    lunch (`lunch_share` of the rate), none at night or on Saturdays and Sundays (day 0 is a Monday)."""
    rng = random.Random(seed)
    arrivals = []
    for day in range(weeks * 7):
        if day % 7 >= 5:
            continue
        t = day * DAY_S + open_h * HOUR_S
        while True:
            hour = (t - day * DAY_S) / HOUR_S
            rate = sessions_per_hour * (lunch_share if lunch[0] <= hour < lunch[1] else 1.0)
            t += rng.expovariate(rate / HOUR_S)
            if t >= day * DAY_S + close_h * HOUR_S:
                break
            at = t
            for _ in range(rng.randint(*session_jobs)):
                arrivals.append(at)
                at += rng.expovariate(1.0 / think_s)
    return _jobs(arrivals, rng)


def trickle(seed: int = 5, days: int = 7, per_hour: float = 1.6) -> list[Job]:
    """A round-the-clock trickle: a Poisson stream of `per_hour` jobs an hour, day and night (an integration
    that submits now and then)."""
    return steady(seed=seed, days=days, per_hour=per_hour)


def nightly_batch(seed: int = 6, days: int = 7, batch_jobs: tuple[int, int] = (180, 220),
                  batch_h: float = 1.0) -> list[Job]:
    """A nightly batch and nothing else: `batch_jobs` jobs submitted by a script within two minutes of
    `batch_h` o'clock each night."""
    rng = random.Random(seed)
    arrivals = []
    for day in range(days):
        start = day * DAY_S + batch_h * HOUR_S + rng.uniform(-300.0, 300.0)
        arrivals += [start + rng.uniform(0.0, 120.0) for _ in range(rng.randint(*batch_jobs))]
    return _jobs(arrivals, rng)


# The reference traces shipped under lifecycle/simulation/traces/, each the output of its generator's defaults:
# the three the default policy was chosen on, and three shapes users have that it was never tuned on.
REFERENCE_TRACES: dict[str, Callable[[], list[Job]]] = {
    "steady": steady,
    "bursty": bursty,
    "sparse-nightly": sparse_nightly,
    "office": office,
    "trickle": trickle,
    "nightly-batch": nightly_batch,
}


def reference_trace_path(name: str) -> Path:
    if name not in REFERENCE_TRACES:
        raise TraceError(f"unknown reference trace {name!r}; known: {', '.join(REFERENCE_TRACES)}")
    return TRACES_DIR / f"{name}.csv"


def to_csv(jobs: Sequence[Job]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    full = any(j.priority != "normal" or j.ttl_s is not None for j in jobs)
    writer.writerow(FULL_HEADER if full else HEADER)
    for j in jobs:
        row = [f"{j.arrival_s:.1f}", f"{j.gpu_s:.1f}"]
        writer.writerow(row + [j.priority, "" if j.ttl_s is None else f"{j.ttl_s:.1f}"] if full else row)
    return out.getvalue()


def parse_csv(text: str, source: str = "trace") -> list[Job]:
    """Jobs of a CSV trace, sorted by arrival; a header row `arrival_s,gpu_s` (or `arrival_s,gpu_s,priority,ttl_s`)
    is required."""
    rows = list(csv.reader(io.StringIO(text)))
    header = tuple(c.strip() for c in rows[0]) if rows else ()
    if header not in (HEADER, FULL_HEADER):
        raise TraceError(f"{source}: the first row must be {','.join(HEADER)} or {','.join(FULL_HEADER)}")
    jobs = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise TraceError(f"{source}:{line}: expected {len(header)} columns, got {','.join(row)!r}")
        try:
            arrival, gpu = float(row[0]), float(row[1])
            ttl = float(row[3]) if len(row) > 3 and row[3].strip() else None
        except ValueError:
            raise TraceError(f"{source}:{line}: expected numbers, got {','.join(row)!r}") from None
        priority = row[2].strip() if len(row) > 2 else "normal"
        if arrival < 0 or gpu <= 0 or (ttl is not None and ttl <= 0):
            raise TraceError(f"{source}:{line}: arrival_s must be >= 0, gpu_s and ttl_s > 0")
        if priority not in PRIORITIES:
            raise TraceError(f"{source}:{line}: priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
        jobs.append(Job(arrival, gpu, priority, ttl))
    return sorted(jobs)


def read_trace(path: str | Path) -> list[Job]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror or exc}") from None
    return parse_csv(text, str(path))


def write_reference_traces(directory: Path = TRACES_DIR) -> list[Path]:
    """(Re)write every reference trace from its generator; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, generate in REFERENCE_TRACES.items():
        path = directory / f"{name}.csv"
        path.write_text(to_csv(generate()))
        paths.append(path)
    return paths
