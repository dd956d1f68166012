"""The simulator in a spot market: the day's price, the market choice, interruptions, and replays over the history."""

from datetime import date

import pytest

from lifecycle.cost_model import SpotPrices
from lifecycle.model import Policy
from lifecycle.simulation.markets import SpotMarket, cheapest_usd, first_days
from lifecycle.simulation.simulate import simulate
from lifecycle.simulation.workload import Job

ON_DEMAND = 2.24  # SimulationParams' default price would do; a round one keeps the arithmetic readable
DAY = 86400.0


def history(*days: tuple[str, float, float]) -> SpotPrices:
    return SpotPrices(tuple(date.fromisoformat(d) for d, _, _ in days), tuple(p for _, p, _ in days),
                      tuple(r for _, _, r in days))


CALM = history(("2025-01-01", 0.56, 0.0), ("2025-01-02", 2.0, 0.0))  # a quarter of on-demand, then dear


def test_a_cheap_spot_instance_serves_and_is_billed_at_its_price():
    r = simulate([Job(100, 20)], Policy(idle_stop_s=300), market=SpotMarket(CALM, date(2025, 1, 1)),
                 hourly_price=ON_DEMAND)
    [run] = r.runs
    assert run.instance_id == "i-gpu0-spot"
    assert r.dollars == pytest.approx(run.seconds * 0.56 / 3600)


def test_a_dear_day_starts_the_on_demand_instance_at_its_price():
    r = simulate([Job(DAY + 100, 20)], Policy(idle_stop_s=300), market=SpotMarket(CALM, date(2025, 1, 1)),
                 hourly_price=ON_DEMAND)
    [run] = r.runs
    assert run.instance_id == "i-gpu0"
    assert r.dollars == pytest.approx(run.seconds * ON_DEMAND / 3600)


def test_the_replaced_rule_knows_no_spot_market():
    from lifecycle.simulation.replaced import ReplacedRule
    r = simulate([Job(100, 20)], ReplacedRule(), market=SpotMarket(CALM, date(2025, 1, 1)), hourly_price=ON_DEMAND)
    assert {run.instance_id for run in r.runs} == {"i-gpu0"}


def test_an_interruption_gives_the_job_back_and_the_on_demand_instance_finishes_it():
    # Interrupted within the hour: the worker hears the notice two minutes ahead, gives back the long job it cannot
    # finish, and the on-demand instance starts at once and runs it.
    stormy = SpotMarket(CALM, date(2025, 1, 1), seed=3, interruptions_per_hour=6.0)
    r = simulate([Job(0, 3000)], Policy(idle_stop_s=60), market=stormy, hourly_price=ON_DEMAND)
    assert r.cost.interruptions >= 1
    assert r.completed == 1 and r.failed == 0 and r.unserved == 0
    ids = [run.instance_id for run in r.runs]
    assert ids[0] == "i-gpu0-spot" and "i-gpu0" in ids
    # Held off spot for spot_hold_s after it, the work finished on-demand.
    assert r.runs[-1].instance_id == "i-gpu0"


def test_interruptions_are_drawn_from_the_seed():
    trace = [Job(h * 3600.0, 20) for h in range(24)]
    runs = [simulate(trace, Policy(idle_stop_s=3600),
                     market=SpotMarket(CALM, date(2025, 1, 1), seed=s, interruptions_per_hour=0.5)).runs
            for s in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_first_days_spread_over_the_history_and_leave_room_for_the_trace():
    prices = history(("2025-01-01", 0.5, 0.0), ("2025-01-31", 0.5, 0.0))
    assert first_days(prices, 10, 3) == [date(2025, 1, 1), date(2025, 1, 11), date(2025, 1, 21)]
    assert first_days(prices, 10, 1) == [date(2025, 1, 21)]
    assert first_days(prices, 60, 3) == [date(2025, 1, 1)]  # longer than the history: from its start


def test_the_optimum_pays_the_market_a_start_takes_on_its_day():
    from lifecycle.billing import Run
    runs = [Run("i", 0, 3600), Run("i", DAY, DAY + 3600)]
    assert cheapest_usd(runs, SpotMarket(CALM, date(2025, 1, 1)), ON_DEMAND, 0.8) == pytest.approx(0.56 + ON_DEMAND)


def test_a_low_priority_job_given_back_at_a_notice_waits_in_its_own_queue():
    # A GPU started for a normal job takes the long low one next; EC2 interrupts it mid-job (this seed: after about
    # 18 minutes). The worker gives the low job back to the low queue, where it waits: low work alone starts no GPU.
    stormy = SpotMarket(CALM, date(2025, 1, 1), seed=0, interruptions_per_hour=6.0)
    r = simulate([Job(0, 10), Job(1, 3000, priority="low")], Policy(idle_stop_s=600), market=stormy,
                 hourly_price=ON_DEMAND)
    assert r.cost.interruptions == 1 and [run.instance_id for run in r.runs] == ["i-gpu0-spot"]
    assert (r.completed, r.unserved, r.failed) == (1, 1, 0)
