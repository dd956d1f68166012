"""GPU cost per job of the lifecycle policies on every reference trace, beside per-second serverless.

Every trace under lifecycle/simulation/traces/ is replayed through the simulator (lifecycle/simulation/simulate.py)
under the replaced system's CloudWatch rule, the fixed default policy, the learning policy (lifecycle/learning.py,
which sees only the jobs before each check) and the hindsight optimum, on the deployment the cost model describes
(lifecycle/cost_model.py: its cold start part by part, the instance's price, the pool's EBS volumes billed all
month); and on a per-second serverless GPU (lifecycle/simulation/serverless.py). One table per trace, every
row's cost as a ratio to serverless's; then the targets, for the learning policy:
- median cost ratio to serverless at most 0.8;
- p95 wait on every trace no worse than the replaced rule's (ratio at most 1.0);
- median p95-wait ratio to serverless at most 2.0.
Last line: `cost vs serverless median <x> max <x>; p95 wait vs serverless median <x>; worst p95 vs replaced <x>`.
`--quick` replays two short traces (tests/bench/test_benches.py runs it so the bench keeps working).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle.cost_model import ColdStart, Offer, Volume, on_demand  # noqa: E402
from lifecycle.learning import Economics  # noqa: E402
from lifecycle.simulation.optimum import optimum  # noqa: E402
from lifecycle.simulation.policies import DEFAULT_POLICY  # noqa: E402
from lifecycle.simulation.replaced import ReplacedRule  # noqa: E402
from lifecycle.simulation.scenario import SimulationParams, SimulationResult  # noqa: E402
from lifecycle.simulation.serverless import Serverless, simulate_serverless  # noqa: E402
from lifecycle.simulation.simulate import Learned, simulate  # noqa: E402
from lifecycle.simulation.workload import REFERENCE_TRACES, Job, read_trace, reference_trace_path  # noqa: E402

QUICK_TRACES = ("bursty", "trickle")


@dataclass(frozen=True)
class Row:
    """One way of serving a trace: what it cost (GPU and, for a pool, its volumes) and what the jobs waited."""

    name: str
    result: SimulationResult
    volume_usd: float = 0.0

    @property
    def usd(self) -> float:
        return self.result.dollars + self.volume_usd

    @property
    def per_job(self) -> float:
        return self.usd / max(1, self.result.jobs)


def span_s(trace: list[Job]) -> float:
    return max(job.arrival_s for job in trace) - min(job.arrival_s for job in trace) if trace else 0.0


def compare(trace: list[Job], params: SimulationParams, economics: Economics, volume: Volume, pool: int,
            serverless: Serverless) -> list[Row]:
    """Every compared way of serving one trace; the pool's volumes are billed over the trace's span."""
    volumes = volume.usd_for(span_s(trace), pool)
    return [
        Row("replaced", simulate(trace, ReplacedRule(), params=params), volume.usd_for(span_s(trace), 1)),
        Row("default", simulate(trace, DEFAULT_POLICY, params=params), volumes),
        Row("learned", simulate(trace, Learned(economics, base=DEFAULT_POLICY), params=params), volumes),
        Row("optimum", optimum(trace, params=params), volume.usd_for(span_s(trace), 1)),
        Row(serverless.name, simulate_serverless(trace, serverless)),
    ]


def table(rows: list[Row]) -> str:
    serverless = rows[-1]
    header = ("", "usd", "$/job", "x serverless", "starts", "p50 s", "p95 s", "x sl p95")
    lines = [header] + [
        (row.name, f"{row.usd:.2f}", f"{row.per_job:.4f}", f"{row.usd / serverless.usd:.2f}", str(row.result.starts),
         f"{row.result.wait_p50_s:.0f}", f"{row.result.wait_p95_s:.0f}",
         f"{row.result.wait_p95_s / serverless.result.wait_p95_s:.2f}" if serverless.result.wait_p95_s else "-")
        for row in rows]
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in
                               enumerate(zip(line, widths))) for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_TRACES)} (make test runs this)")
    parser.add_argument("--pool", type=int, default=1, help="GPU instances in the pool (each with its volume)")
    args = parser.parse_args()

    cold, offer, volume, serverless = ColdStart(), on_demand(), Volume(), Serverless()
    params = SimulationParams.deployment(cold, offer)
    economics = Economics(offer.hourly_usd, cold.billed_s, cold.total_s)
    describe(cold, offer, volume, serverless, args.pool)

    names = QUICK_TRACES if args.quick else tuple(REFERENCE_TRACES)
    ratios, p95_ratios, vs_replaced = [], [], []
    for name in names:
        trace = read_trace(reference_trace_path(name))
        rows = compare(trace, params, economics, volume, args.pool, serverless)
        print(f"\n{name}: {len(trace)} jobs over {span_s(trace) / 86400:.1f} days")
        print(table(rows))
        learned, replaced, sl = rows[2], rows[0], rows[-1]
        ratios.append(learned.usd / sl.usd)
        p95_ratios.append(learned.result.wait_p95_s / sl.result.wait_p95_s if sl.result.wait_p95_s else 1.0)
        vs_replaced.append(learned.result.wait_p95_s / replaced.result.wait_p95_s if replaced.result.wait_p95_s else 1.0)
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


def describe(cold: ColdStart, offer: Offer, volume: Volume, serverless: Serverless, pool: int) -> None:
    """The cost model's defaults, as docs/DEPLOYMENT.md builds the deployment."""
    print(f"gpuorch: {offer.name} ${offer.hourly_usd:.5f}/h, billed per second from `running`, at least 60 s a start")
    print(f"  {cold.describe()}")
    print(f"  models from {cold.source.name}: {cold.source.why}")
    print(f"  {pool} pool instance(s), each with {volume.size_gb:.0f} GB gp3 at {volume.throughput_mib_s:.0f} MiB/s: "
          f"${volume.monthly_usd:.2f} a month, running or stopped ({volume.why})")
    print(f"{serverless.describe()}")


if __name__ == "__main__":
    sys.exit(main())
