"""GPU cost per job of the lifecycle policies on every reference trace, beside per-second serverless.

Every trace under lifecycle/simulation/traces/ is replayed through the simulator (lifecycle/simulation/simulate.py)
under the replaced system's CloudWatch rule, the fixed default policy, the learning policy (lifecycle/learning.py,
which sees only the jobs before each check) and the hindsight optimum, on the deployment `gpuorch deploy --spot`
builds as the cost model describes it (lifecycle/cost_model.py: its cold start part by part, the model files
fetched from S3 onto the instance store while ComfyUI starts, the instance's price, the pool's EBS volumes billed all
month); and on a per-second serverless GPU (lifecycle/simulation/serverless.py).

The spot market is not assumed: each on-demand instance of the pool has a spot one beside it, and each trace is
replayed from several first days spread over the two-year spot price history (lifecycle/simulation/data/), where the
policies choose the market by the day's price and meet its interruptions; a row's cost is its total over those
replays, its waits all their jobs' waits. The replaced rule knew one on-demand instance only; the hindsight optimum
pays the market a start would take on its day, uninterrupted.

One table per trace, every row's cost as a ratio to serverless's. `learned` is the learning policy as the settings
ship it, weighing each second a job waits for a cold start at GPUORCH_WAIT_VALUE_USD_PER_HOUR; `learned, bill only`
is the same minimising the GPU bill alone. Then the targets, for `learned`:
- median cost ratio to serverless at most 0.8;
- p95 wait on every trace no worse than the replaced rule's (ratio at most 1.0);
- median p95-wait ratio to serverless at most 2.0.
Last line: `cost vs serverless median <x> max <x>; p95 wait vs serverless median <x>; worst p95 vs replaced <x>`.
`--quick` replays two short traces from two first days (tests/bench/test_benches.py runs it so the bench keeps
working).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuorch.deploy.template import VOLUMES, StackOptions  # noqa: E402
from gpuorch.settings import Settings  # noqa: E402
from gpuorch.workflows import load_workflows  # noqa: E402
from lifecycle.cost_model import (  # noqa: E402
    ColdStart, Offer, SpotPrices, Volume, cold_start_of, on_demand, read_spot_prices,
)
from lifecycle.learning import Economics  # noqa: E402
from lifecycle.model import Policy  # noqa: E402
from lifecycle.simulation.markets import SpotMarket, cheapest_usd, first_days  # noqa: E402
from lifecycle.simulation.optimum import optimum  # noqa: E402
from lifecycle.simulation.policies import DEFAULT_POLICY  # noqa: E402
from lifecycle.simulation.replaced import ReplacedRule  # noqa: E402
from lifecycle.simulation.scenario import SimulationParams, SimulationResult, percentile  # noqa: E402
from lifecycle.simulation.serverless import Serverless, simulate_serverless  # noqa: E402
from lifecycle.simulation.simulate import Learned, simulate  # noqa: E402
from lifecycle.simulation.workload import REFERENCE_TRACES, Job, read_trace, reference_trace_path  # noqa: E402

QUICK_TRACES = ("bursty", "trickle")
SPOT_PRICES = Path(__file__).resolve().parents[1] / "lifecycle" / "simulation" / "data" / "g6e-2xlarge-spot-us-east-1.csv"
FIRST_DAYS, QUICK_FIRST_DAYS = 8, 2


@dataclass(frozen=True)
class Row:
    """One way of serving a trace over its replays: what it cost (GPU and, for a pool, its volumes) and what the
    jobs waited."""

    name: str
    results: tuple[SimulationResult, ...]
    volume_usd: float = 0.0

    @property
    def usd(self) -> float:
        return sum(r.dollars for r in self.results) + self.volume_usd

    @property
    def jobs(self) -> int:
        return sum(r.jobs for r in self.results)

    @property
    def per_job(self) -> float:
        return self.usd / max(1, self.jobs)

    @property
    def starts(self) -> int:
        return sum(r.starts for r in self.results)

    @property
    def interruptions(self) -> int:
        return sum(r.cost.interruptions for r in self.results)

    def wait_s(self, q: float) -> float:
        return percentile([w for r in self.results for w in r.waits_s], q)


def span_s(trace: list[Job]) -> float:
    return max(job.arrival_s for job in trace) - min(job.arrival_s for job in trace) if trace else 0.0


def compare(trace: list[Job], params: SimulationParams, economics: Economics, volume: Volume, pool: int,
            serverless: Serverless, markets: Sequence[SpotMarket]) -> list[Row]:
    """Every compared way of serving one trace, each replayed once per market; a pool's volumes (a spot and an
    on-demand instance per slot) are billed over the trace's span."""
    def replays(policy: Policy | Learned) -> tuple[SimulationResult, ...]:
        return tuple(simulate(trace, policy, params=params, market=m, instances=pool) for m in markets)

    volumes = len(markets) * volume.usd_for(span_s(trace), 2 * pool)
    one_volume = len(markets) * volume.usd_for(span_s(trace), 1)
    fixed = dataclasses.replace(DEFAULT_POLICY, max_instances=pool)  # GPUORCH_MAX_INSTANCES follows the pool
    # The learned policy as the settings ship it (each second a job waits for a cold start weighed at
    # GPUORCH_WAIT_VALUE_USD_PER_HOUR), and the same minimising the GPU bill alone.
    learned = Learned(economics, base=fixed)
    bill_only = Learned(dataclasses.replace(economics, wait_usd_per_s=0.0), base=fixed)
    replaced = simulate(trace, ReplacedRule(), params=params)
    best = optimum(trace, params=params)
    best_in = [dataclasses.replace(best, cost=dataclasses.replace(
        best.cost, dollars=cheapest_usd(best.runs, m, params.hourly_price, fixed.spot_max_share))) for m in markets]
    return [
        Row("replaced", (replaced,) * len(markets), one_volume),
        Row("default", replays(fixed), volumes),
        Row("learned", replays(learned), volumes),
        Row("learned, bill only", replays(bill_only), volumes),
        Row("optimum", tuple(best_in), one_volume),
        Row(serverless.name, (simulate_serverless(trace, serverless),) * len(markets)),
    ]


def table(rows: list[Row]) -> str:
    serverless = rows[-1]
    sl_p95 = serverless.wait_s(95)
    header = ("", "usd", "$/job", "x serverless", "starts", "interrupted", "p50 s", "p95 s", "x sl p95")
    lines = [header] + [
        (row.name, f"{row.usd:.2f}", f"{row.per_job:.4f}", f"{row.usd / serverless.usd:.2f}", str(row.starts),
         str(row.interruptions), f"{row.wait_s(50):.0f}", f"{row.wait_s(95):.0f}",
         f"{row.wait_s(95) / sl_p95:.2f}" if sl_p95 else "-")
        for row in rows]
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in
                               enumerate(zip(line, widths))) for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_TRACES)} (make test runs this)")
    parser.add_argument("--pool", type=int, default=StackOptions.on_demand_instances,
                        help="on-demand GPU instances in the pool, each with a spot one beside it (gpuorch deploy "
                             "--on-demand N --spot)")
    parser.add_argument("--models-store", choices=sorted(VOLUMES), default=StackOptions.models_store,
                        help="where the model files live (gpuorch deploy --models-store), with its volume")
    args = parser.parse_args()

    # The models the built-in workflows declare (models.json), where `gpuorch deploy` keeps them, on its volume.
    files = [(model.name, model.bytes) for workflow in load_workflows() for model in workflow.models]
    size_gb, throughput = VOLUMES[args.models_store]
    cold, offer, serverless = cold_start_of(files, args.models_store), on_demand(), Serverless()
    volume = Volume(size_gb, throughput, why=f"the gp3 volume gpuorch deploy --models-store {args.models_store} creates")
    prices = read_spot_prices(SPOT_PRICES)
    params = SimulationParams.deployment(cold, offer)
    economics = Economics(offer.hourly_usd, cold.billed_s, cold.total_s,
                          wait_usd_per_s=Settings().wait_value_usd_per_hour / 3600.0)
    describe(cold, offer, volume, serverless, args.pool, prices, economics)

    names = QUICK_TRACES if args.quick else tuple(REFERENCE_TRACES)
    count = QUICK_FIRST_DAYS if args.quick else FIRST_DAYS
    ratios, p95_ratios, vs_replaced = [], [], []
    for name in names:
        trace = read_trace(reference_trace_path(name))
        days = first_days(prices, int(span_s(trace) // 86400) + 1, count)
        markets = [SpotMarket(prices, day, seed=n) for n, day in enumerate(days)]
        rows = compare(trace, params, economics, volume, args.pool, serverless, markets)
        print(f"\n{name}: {len(trace)} jobs over {span_s(trace) / 86400:.1f} days, replayed from "
              f"{', '.join(f'{d:%Y-%m-%d} (spot {share(prices, d, offer):.0%})' for d in days)}")
        print(table(rows))
        replaced, learned, sl = rows[0], rows[2], rows[-1]
        if learned.usd > 1.05 * rows[1].usd:
            print(f"{name}: learned costs {learned.usd / rows[1].usd - 1:.0%} more than the fixed default")
        ratios.append(learned.usd / sl.usd)
        p95_ratios.append(learned.wait_s(95) / sl.wait_s(95) if sl.wait_s(95) else 1.0)
        vs_replaced.append(learned.wait_s(95) / replaced.wait_s(95) if replaced.wait_s(95) else 1.0)
        if learned.usd > sl.usd:
            print(f"{name}: serverless stays cheaper here (${sl.per_job:.4f} a job against ${learned.per_job:.4f})")

    median_cost, median_p95 = statistics.median(ratios), statistics.median(p95_ratios)
    checks = [
        (f"median cost vs serverless {median_cost:.2f} (target <= 0.8)", median_cost <= 0.8),
        (f"worst p95 wait vs replaced {max(vs_replaced):.2f} (target <= 1.0)", max(vs_replaced) <= 1.0),
        (f"median p95 wait vs serverless {median_p95:.2f} (target <= 2.0)", median_p95 <= 2.0),
    ]
    print("\nlearned: " + "; ".join(f"{text}: {'ok' if ok else 'MISSED'}" for text, ok in checks))
    print(f"cost vs serverless median {median_cost:.2f} max {max(ratios):.2f}; p95 wait vs serverless median "
          f"{median_p95:.2f}; worst p95 vs replaced {max(vs_replaced):.2f}")
    return 0


def share(prices: SpotPrices, day: date, offer: Offer) -> float:
    return prices.at(day)[0] / offer.hourly_usd


def describe(cold: ColdStart, offer: Offer, volume: Volume, serverless: Serverless, pool: int,
             prices: SpotPrices, economics: Economics) -> None:
    """The cost model's defaults, as `gpuorch deploy --spot` builds the deployment."""
    print(f"gpuorch: {offer.name} ${offer.hourly_usd:.5f}/h, billed per second from `running`, at least 60 s a start")
    print(f"  {cold.describe()}")
    print(f"  models: the built-in workflows' declared files, from {cold.source.name}: {cold.source.why}")
    print(f"  pool: {pool} on-demand instance(s) and a spot one beside each (gpuorch deploy --on-demand {pool} --spot), "
          f"at most {pool} running; each with {volume.size_gb:.0f} GB gp3 at {volume.throughput_mib_s:.0f} MiB/s: "
          f"${volume.monthly_usd:.2f} a month, running or stopped ({volume.why})")
    print(f"  learned: a job's wait for a cold start weighed at ${economics.wait_usd_per_s * 3600:.2f} an hour "
          f"(GPUORCH_WAIT_VALUE_USD_PER_HOUR)")
    print(f"  spot: {len(prices.dates)} daily prices {prices.dates[0]} to {prices.dates[-1]}, "
          f"{min(prices.usd_per_hour) / offer.hourly_usd:.0%}-{max(prices.usd_per_hour) / offer.hourly_usd:.0%} of "
          f"on-demand (median {statistics.median(prices.usd_per_hour) / offer.hourly_usd:.0%}); {prices.source}")
    print(f"{serverless.describe()}")


if __name__ == "__main__":
    sys.exit(main())
