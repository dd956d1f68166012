"""The cost model: cold start part by part, spot prices from their history, offers and idle volumes."""

from datetime import date

import pytest

from lifecycle.cost_model import (
    GB, GP3_BASELINE, MIB, ColdStart, ModelSource, Volume, on_demand, read_spot_prices, spot,
)
from lifecycle.simulation.workload import TRACES_DIR

SPOT_FILE = TRACES_DIR.parent / "data" / "g6e-2xlarge-spot-us-east-1.csv"


def test_the_cold_start_adds_its_parts_and_bills_from_running():
    cold = ColdStart(ec2_pending_s=15, os_boot_s=45, comfyui_start_s=15, model_bytes=500 * MIB * 60,
                     source=ModelSource("test", 500 * MIB, "test"), first_inference_s=10)
    assert cold.model_load_s == 60
    assert cold.billed_s == 45 + 15 + 60 + 10
    assert cold.total_s == 15 + cold.billed_s


def test_models_fetched_at_boot_arrive_while_comfyui_starts_so_only_the_longer_counts():
    fetched = ModelSource("test", 500 * MIB, "test", fetched_at_boot=True)
    slow = ColdStart(os_boot_s=45, comfyui_start_s=15, model_bytes=500 * MIB * 60, source=fetched, first_inference_s=10)
    assert slow.worker_start_s == 60 and slow.warmup_s == 10 and slow.billed_s == 45 + 60 + 10
    quick = ColdStart(os_boot_s=45, comfyui_start_s=15, model_bytes=500 * MIB * 5, source=fetched, first_inference_s=10)
    assert quick.billed_s == 45 + 15 + 10
    # Read from a volume, the models load in the warm-up, after ComfyUI has started.
    read = ColdStart(os_boot_s=45, comfyui_start_s=15, model_bytes=500 * MIB * 60,
                     source=ModelSource("test", 500 * MIB, "test"), first_inference_s=10)
    assert read.worker_start_s == 15 and read.warmup_s == 70 and read.billed_s == 45 + 15 + 60 + 10
    assert "the longer of ComfyUI 15 s and models" in slow.describe()


def test_the_gp3_baseline_reads_the_models_in_about_four_minutes():
    # The figure DEPLOYMENT.md quotes: ~31 GB at gp3's 125 MiB/s.
    assert ColdStart(model_bytes=31 * GB, source=GP3_BASELINE).model_load_s == pytest.approx(236, abs=1)


def test_a_part_cannot_be_negative():
    with pytest.raises(ValueError):
        ColdStart(os_boot_s=-1)


@pytest.mark.parametrize("day,price,band", [
    (date(2024, 8, 28), 0.1862, 0.025),   # the first snapshot, before any band: the lowest band
    (date(2024, 8, 20), 0.1862, 0.025),   # before the history: its first snapshot
    (date(2024, 10, 24), 0.4799, 0.175),  # a "15-20%" band
    (date(2026, 8, 14), 1.9571, 0.075),
])
def test_spot_prices_are_read_day_by_day_with_their_interruption_band(day, price, band):
    prices = read_spot_prices(SPOT_FILE)
    assert prices.at(day) == (price, band)
    assert "deepracer-on-the-spot" in prices.source


def test_a_spot_offer_follows_the_price_of_its_day_not_a_fixed_discount():
    prices = read_spot_prices(SPOT_FILE)
    cheap, dear = spot(prices, date(2025, 7, 1)), spot(prices, date(2026, 8, 14))
    assert cheap.hourly_usd < 0.35 * on_demand().hourly_usd and dear.hourly_usd > 0.85 * on_demand().hourly_usd
    assert cheap.market == "spot" and 0 < cheap.interruptions_per_hour < 0.001
    # Another type of the family is priced by the on-demand ratio.
    assert spot(prices, date(2025, 7, 1), "g6e.xlarge").hourly_usd == pytest.approx(
        cheap.hourly_usd * 1.861 / 2.24208)


def test_the_deployments_volume_costs_its_storage_and_its_throughput_over_the_baseline():
    volume = Volume(size_gb=150, throughput_mib_s=500)
    assert volume.monthly_usd == pytest.approx(150 * 0.08 + 375 * 0.04)
    assert volume.usd_for(730 * 3600, instances=2) == pytest.approx(2 * volume.monthly_usd)
    assert Volume(size_gb=100, throughput_mib_s=125).monthly_usd == pytest.approx(8.0)


def test_the_deployments_cold_start_reads_its_declared_models_from_its_store():
    from lifecycle.cost_model import GP3_PROVISIONED, S3_TO_INSTANCE_STORE, cold_start_of
    files = [("a.safetensors", 20 * GB), ("b.safetensors", 10 * GB), ("a.safetensors", 20 * GB)]  # a shared once
    on_volume = cold_start_of(files)
    assert on_volume.model_bytes == 30 * GB and on_volume.source == GP3_PROVISIONED
    fetched = cold_start_of(files, "instance-store")
    assert fetched.source == S3_TO_INSTANCE_STORE and fetched.total_s < on_volume.total_s
    assert cold_start_of([]).model_bytes == ColdStart().model_bytes
