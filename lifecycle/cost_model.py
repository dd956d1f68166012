"""What a GPU costs and how long it takes to serve: cold start part by part, offers and their prices, idle volumes.

Every default says where it comes from. The ones that describe the deployment are what `gpuorch deploy` builds with
the models on the volume (a g6e.2xlarge with a 150 GB gp3 volume provisioned at 500 MiB/s, the Deep Learning Base
AMI, ComfyUI started by systemd at boot, the GPU worker's warm-up before its first job); `bench/cost.py` takes the
model store, the volume and the pool from `gpuorch deploy`'s own defaults and prints them with its results.
"""

from __future__ import annotations

import csv
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Iterable

from lifecycle.prices import REFERENCE_REGION, region_prices

MIB = 1024 * 1024
GB = 1000 ** 3

# gp3 as AWS prices and documents it (us-east-1): every volume gets 125 MiB/s and 3,000 IOPS at no extra cost,
# throughput can be provisioned up to 1,000 MiB/s; storage is $0.08 per GB-month and each provisioned MiB/s over
# the baseline $0.04 a month. A stopped instance's volume is billed all month, whether or not the instance runs.
GP3_BASELINE_MIB_S = 125.0
GP3_USD_PER_GB_MONTH = 0.08
GP3_USD_PER_MIB_S_MONTH = 0.04
HOURS_PER_MONTH = 730.0

# The model files the built-in workflows load, as DEPLOYMENT.md counts them: the fp8 Qwen-Image-Edit-2509
# diffusion model, the fp8 Qwen2.5-VL text encoder, the VAE and the three LoRAs, about 31 GB read at every
# cold start (the same figure that makes a gp3 baseline load take about 236 s).
MODEL_BYTES = 31 * GB


@dataclass(frozen=True)
class ModelSource:
    """Where a starting instance reads its model files from, and how fast."""

    name: str
    bytes_per_s: float
    why: str
    # Fetched by the model sync at boot while ComfyUI starts beside it (the instance store), rather than read by
    # ComfyUI's first load after it has started (a volume): then only the longer of the two counts.
    fetched_at_boot: bool = False


# The three ways DEPLOYMENT.md and the model sync can bring the models to a started instance.
GP3_BASELINE = ModelSource("gp3 baseline", GP3_BASELINE_MIB_S * MIB, "a gp3 volume without provisioned throughput")
GP3_PROVISIONED = ModelSource("gp3 500 MiB/s", 500 * MIB, "the volume docs/DEPLOYMENT.md creates (Throughput=500)")
S3_TO_INSTANCE_STORE = ModelSource(
    "S3 to instance store", 1000 * MIB,
    "parallel ranged GETs to the g6e.2xlarge's local NVMe; its network reaches 20 Gbit/s in bursts, about half "
    "of that sustained from S3, hashed as it arrives",
    fetched_at_boot=True,
)


@dataclass(frozen=True)
class ColdStart:
    """A stopped GPU instance's way to its first job, part by part (seconds).

    - ec2_pending_s: StartInstances until EC2 says `running` (not billed). EBS-backed instances of current
      generations reach it in 10-20 s (published launch-time measurements, e.g. martysweet.co.uk, "EC2 Launch
      Times", 2023); a GPU host is at the slow end.
    - os_boot_s: `running` until systemd starts ComfyUI: the Deep Learning Base AMI (Ubuntu 22.04, NVIDIA
      driver) boots in 30-60 s; billed from here on.
    - comfyui_start_s: ComfyUI importing torch and its node modules until it answers (10-20 s on the L40S host).
    - model bytes over the source's throughput: the workflows' model files read from the volume by ComfyUI's first
      load, after it started; or fetched from S3 to the instance store at boot while ComfyUI starts (comfyui.service
      is not ordered after gpuorch-models-sync.service; the GPU worker waits for both), so only the longer counts.
    - first_inference_s: the GPU worker's warm-up workflow after the load (4 Lightning steps on the L40S).
    """

    ec2_pending_s: float = 15.0
    os_boot_s: float = 45.0
    comfyui_start_s: float = 15.0
    model_bytes: float = MODEL_BYTES
    source: ModelSource = GP3_PROVISIONED
    first_inference_s: float = 10.0

    def __post_init__(self) -> None:
        parts = (self.ec2_pending_s, self.os_boot_s, self.comfyui_start_s, self.model_bytes, self.first_inference_s)
        if min(parts) < 0 or self.source.bytes_per_s <= 0:
            raise ValueError("cold start parts cannot be negative, and a model source must have a throughput")

    @property
    def model_load_s(self) -> float:
        return self.model_bytes / self.source.bytes_per_s

    @property
    def worker_start_s(self) -> float:
        """Seconds from the end of the OS boot until the GPU worker starts: ComfyUI answers and, when the sync
        fetches them at boot, every model file is in place."""
        if self.source.fetched_at_boot:
            return max(self.comfyui_start_s, self.model_load_s)
        return self.comfyui_start_s

    @property
    def warmup_s(self) -> float:
        """The worker's warm-up: the first inference, after ComfyUI's first load of the models read from a volume."""
        return self.first_inference_s + (0.0 if self.source.fetched_at_boot else self.model_load_s)

    @property
    def billed_s(self) -> float:
        """Seconds billed before the first job: from `running` until the worker is ready."""
        return self.os_boot_s + self.worker_start_s + self.warmup_s

    @property
    def total_s(self) -> float:
        """Seconds from a start request until the first job runs."""
        return self.ec2_pending_s + self.billed_s

    def describe(self) -> str:
        comfyui = f"ComfyUI {self.comfyui_start_s:.0f} s"
        models = f"models {self.model_bytes / GB:.0f} GB from {self.source.name} {self.model_load_s:.0f} s"
        ready = f"the longer of {comfyui} and {models} beside it" if self.source.fetched_at_boot else (
            f"{comfyui} + {models}")
        return (f"cold start {self.total_s:.0f} s = EC2 pending {self.ec2_pending_s:.0f} s (not billed) + OS boot "
                f"{self.os_boot_s:.0f} s + {ready} + first inference {self.first_inference_s:.0f} s")


# GPUORCH_MODELS_STORE's values, and where each reads the model files from at a cold start.
MODEL_SOURCES = {"volume": GP3_PROVISIONED, "instance-store": S3_TO_INSTANCE_STORE}


def cold_start_of(model_files: Iterable[tuple[str, int]], store: str = "volume") -> ColdStart:
    """The deployment's cold start: its workflows' model files (name, bytes, as their models.json declare them; a
    file two workflows share is read once) from where GPUORCH_MODELS_STORE keeps them; other parts as ColdStart's."""
    sizes = dict(model_files)
    return ColdStart(model_bytes=float(sum(sizes.values())) if sizes else MODEL_BYTES,
                     source=MODEL_SOURCES.get(store, GP3_PROVISIONED))


@dataclass(frozen=True)
class SpotPrices:
    """A spot price history (date -> USD/h, the lowest zone's daily price) and its monthly interruption bands."""

    dates: tuple[date, ...]
    usd_per_hour: tuple[float, ...]
    interruption_per_month: tuple[float, ...]
    source: str = ""

    def at(self, day: date) -> tuple[float, float]:
        """(USD/h, interruptions a month) on `day`: the last snapshot at or before it (the first one before)."""
        if not self.dates:
            raise ValueError("an empty spot price history")
        index = max(0, bisect_right(self.dates, day) - 1)
        return self.usd_per_hour[index], self.interruption_per_month[index]


# AWS's Spot Instance Advisor bands -> the monthly interruption frequency a model assumes (the band's middle,
# and 25% for ">20%"); a snapshot without a band keeps the one before it.
INTERRUPTION_BANDS = {"<5%": 0.025, "5-10%": 0.075, "10-15%": 0.125, "15-20%": 0.175, ">20%": 0.25}


def read_spot_prices(path: Path) -> SpotPrices:
    """A `date,usd_per_hour,interruption_band` CSV (lines starting with # are its source notes)."""
    lines = path.read_text().splitlines()
    notes = " ".join(line.lstrip("# ") for line in lines if line.startswith("#"))
    by_day: dict[date, tuple[float, float]] = {}
    band = INTERRUPTION_BANDS["<5%"]
    for row in csv.DictReader(line for line in lines if not line.startswith("#")):
        band = INTERRUPTION_BANDS.get(row["interruption_band"].strip(), band)
        by_day[date.fromisoformat(row["date"])] = (float(row["usd_per_hour"]), band)  # a day's last snapshot wins
    days = tuple(sorted(by_day))
    return SpotPrices(days, tuple(by_day[d][0] for d in days), tuple(by_day[d][1] for d in days), notes)


@dataclass(frozen=True)
class Offer:
    """One way to buy the GPU: an instance type in a market at an hourly price.

    `interruptions_per_hour` is the chance a running spot instance is reclaimed in an hour (0 on demand).
    Both g6e types carry one L40S (48 GB); the xlarge has 4 vCPUs and 32 GiB of memory against 8 and 64, so
    whether the ~31 GB of fp8 models load there is for a deployment to try before it offers that type.
    """

    instance_type: str
    market: str
    hourly_usd: float
    interruptions_per_hour: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.instance_type} {self.market}"


# The reference region's on-demand prices (lifecycle.prices, the region of lifecycle/simulation/data/'s spot history).
ON_DEMAND_USD = region_prices(REFERENCE_REGION).usd_per_hour


def on_demand(instance_type: str = "g6e.2xlarge") -> Offer:
    return Offer(instance_type, "on-demand", ON_DEMAND_USD[instance_type])


def spot(prices: SpotPrices, day: date, instance_type: str = "g6e.2xlarge") -> Offer:
    """The spot offer on `day`: its price from the history (scaled from the g6e.2xlarge's for another type by
    the on-demand ratio, spot prices of one family moving together) and its interruption rate."""
    usd, per_month = prices.at(day)
    scale = ON_DEMAND_USD[instance_type] / ON_DEMAND_USD["g6e.2xlarge"]
    per_hour = -math.log(1.0 - per_month) / HOURS_PER_MONTH  # a monthly chance as a constant hourly rate
    return Offer(instance_type, "spot", usd * scale, per_hour)


@dataclass(frozen=True)
class Volume:
    """The EBS volume of each pool instance, billed every hour of the month, running or stopped."""

    size_gb: float = 150.0
    throughput_mib_s: float = 500.0
    why: str = field(default="the gp3 volume docs/DEPLOYMENT.md creates", compare=False)

    @property
    def monthly_usd(self) -> float:
        extra = max(0.0, self.throughput_mib_s - GP3_BASELINE_MIB_S)
        return self.size_gb * GP3_USD_PER_GB_MONTH + extra * GP3_USD_PER_MIB_S_MONTH

    def usd_for(self, seconds: float, instances: int = 1) -> float:
        """What `instances` such volumes cost over `seconds`."""
        return self.monthly_usd * instances * seconds / (HOURS_PER_MONTH * 3600.0)
