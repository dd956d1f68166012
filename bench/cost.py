"""GPU cost of the lifecycle policies on the reference traces, beside the replaced rule and the hindsight optimum.

Every trace under lifecycle/simulation/traces/ is replayed through the simulator (lifecycle/simulation/simulate.py) under
the replaced system's CloudWatch rule, fixed idle timeouts, the default policy (also without the
check a submission asks for, to show what that check is worth), and set beside the optimum
(lifecycle/simulation/optimum.py); one table per trace, then the targets checked on the bursty trace.
Last line: `bursty cost <usd> replaced <usd> optimum <usd> p95 wait <s> replaced p95 <s>`
(target: cost at least 30% under the replaced rule's at no worse p95 wait, and within 1.3x the optimum).
`--quick` replays the bursty trace alone (tests/bench/test_benches.py runs it so the bench keeps working).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle.simulation.optimum import optimum  # noqa: E402
from lifecycle.simulation.policies import DEFAULT_POLICY, named_policy  # noqa: E402
from lifecycle.simulation.replaced import ReplacedRule  # noqa: E402
from lifecycle.simulation.scenario import SimulationParams, SimulationResult, format_table  # noqa: E402
from lifecycle.simulation.simulate import simulate  # noqa: E402
from lifecycle.simulation.workload import REFERENCE_TRACES, read_trace, reference_trace_path  # noqa: E402

FIXED_MINUTES = (2, 3, 5, 10, 15, 30)


def compare(name: str, params: SimulationParams) -> tuple[list[SimulationResult], SimulationResult]:
    """Every compared policy on one reference trace, and the optimum."""
    trace = read_trace(reference_trace_path(name))
    results = [simulate(trace, ReplacedRule(), params=params)]
    results += [simulate(trace, named_policy(f"fixed-{m}"), name=f"fixed-{m}", params=params) for m in FIXED_MINUTES]
    results.append(simulate(trace, DEFAULT_POLICY, name="default", params=params))
    beat_only = dataclasses.replace(params, check_on_submit=False)
    results.append(simulate(trace, DEFAULT_POLICY, name="default, beat only", params=beat_only))
    return results, optimum(trace, params=params)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boot-s", type=float, default=SimulationParams.boot_s,
                        help="seconds from a start request until the GPU worker runs")
    parser.add_argument("--warmup-s", type=float, default=SimulationParams.warmup_s,
                        help="seconds the worker then spends loading the models")
    parser.add_argument("--hourly-price", type=float, default=SimulationParams.hourly_price,
                        help="USD per hour of the instance (on demand, or a spot price)")
    parser.add_argument("--quick", action="store_true",
                        help="the bursty trace only, whose figures the last line gives (make test runs this)")
    args = parser.parse_args()
    params = SimulationParams(boot_s=args.boot_s, warmup_s=args.warmup_s, hourly_price=args.hourly_price)

    print(f"default policy: idle stop {DEFAULT_POLICY.idle_stop_s:.0f} s, {DEFAULT_POLICY.max_instances} instance; "
          f"cold start {params.cold_start_s:.0f} s; ${params.hourly_price:.2f}/h; checks every "
          f"{params.check_interval_s:.0f} s and on each submission")
    by_trace = {}
    for name in ("bursty",) if args.quick else REFERENCE_TRACES:
        results, best = compare(name, params)
        by_trace[name] = (results, best)
        print(f"\n{name} ({results[0].jobs} jobs)")
        print(format_table([*results, best], best))

    results, best = by_trace["bursty"]
    replaced = next(r for r in results if r.policy == "replaced")
    default = next(r for r in results if r.policy == "default")
    saving = 1 - default.dollars / replaced.dollars
    checks = [
        (f"{saving:.0%} cheaper than replaced (target >= 30%)", saving >= 0.3),
        (f"{default.dollars / best.dollars:.2f}x optimum (target <= 1.3)", default.dollars <= 1.3 * best.dollars),
        (f"p95 wait {default.wait_p95_s:.0f} s vs {replaced.wait_p95_s:.0f} s (target: no worse)",
         default.wait_p95_s <= replaced.wait_p95_s),
    ]
    print("\nbursty, default: " + "; ".join(f"{text}: {'ok' if ok else 'MISSED'}" for text, ok in checks))
    print(f"bursty cost {default.dollars:.2f} replaced {replaced.dollars:.2f} optimum {best.dollars:.2f} "
          f"p95 wait {default.wait_p95_s:.0f} replaced p95 {replaced.wait_p95_s:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
