"""Which market a start takes: spot while cheap enough and not lately refused or interrupted, else on-demand (with
why), the on-demand alternative of a spot start, and the replacement of an interrupted instance."""

from datetime import datetime, timedelta, timezone

import pytest

from lifecycle.decision import decide, interruption_at
from lifecycle.market import next_start, passed_over, start_order
from lifecycle.model import G6E_2XLARGE_HOURLY_USD, Action, Heartbeat, Instance, Policy, Snapshot, SpotSetback

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)
POLICY = Policy(idle_stop_s=300, heartbeat_timeout_s=45, spot_max_share=0.8, spot_hold_s=1800)
ON_DEMAND_USD = G6E_2XLARGE_HOURLY_USD  # a snapshot's price when it names none: the reference region's g6e.2xlarge


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def spot(instance_id: str = "i-spot", state: str = "stopped", launched_s: float = 3600) -> Instance:
    return Instance(instance_id, state, launched_at=ago(launched_s), market="spot")


def od(instance_id: str = "i-od", state: str = "stopped", launched_s: float = 3600) -> Instance:
    return Instance(instance_id, state, launched_at=ago(launched_s), market="on-demand")


# The check's on-demand prices by type (lifecycle.prices, us-east-1).
BY_TYPE = {"g6e.2xlarge": ON_DEMAND_USD, "g6e.xlarge": 1.861}


def snap(*instances, visible=1, prices=None, setbacks=None, beats=()) -> Snapshot:
    return Snapshot(NOW, tuple(instances), queue_visible=visible, heartbeats=tuple(beats),
                    spot_prices=prices if prices is not None else {"i-spot": 0.82, "i-spot2": 0.5},
                    spot_setbacks=setbacks or {}, on_demand_usd=BY_TYPE)


def refused(seconds: float) -> dict:
    return {"i-spot": SpotSetback("refused", ago(seconds), "There is no Spot capacity available")}


def interrupted(seconds: float) -> dict:
    return {"i-spot": SpotSetback("interrupted", ago(seconds), "spot interruption notice")}


def start(action: Action) -> tuple:
    assert (action.fallback is None) == (action.instead_of is None), action
    return (action.instance_id, action.market, action.alternative, action.fallback)


# (case, snapshot, policy, the starts as (instance, market, alternative, fallback))
CHOICES = [
    ("spot cheap: spot, the on-demand one stands by", snap(spot(), od()), POLICY,
     [("i-spot", "spot", "i-od", None)]),
    ("spot at the share exactly: on-demand", snap(spot(), od(), prices={"i-spot": 0.8 * ON_DEMAND_USD}), POLICY,
     [("i-od", "on-demand", None, "spot_price")]),
    ("spot dear: on-demand", snap(spot(), od(), prices={"i-spot": 2.0}), POLICY,
     [("i-od", "on-demand", None, "spot_price")]),
    ("spot price unknown: on-demand", snap(spot(), od(), prices={}), POLICY,
     [("i-od", "on-demand", None, "spot_price")]),
    ("spot never preferred with a share of 0", snap(spot(), od()), Policy(spot_max_share=0.0),
     [("i-od", "on-demand", None, "spot_price")]),
    ("refused 100 s ago: on-demand", snap(spot(), od(), setbacks=refused(100)), POLICY,
     [("i-od", "on-demand", None, "spot_refused")]),
    ("refused longer ago than the hold: spot again", snap(spot(), od(), setbacks=refused(1800)), POLICY,
     [("i-spot", "spot", "i-od", None)]),
    ("interrupted a minute ago: on-demand", snap(spot(), od(), setbacks=interrupted(60)), POLICY,
     [("i-od", "on-demand", None, "spot_interrupted")]),
    ("no hold: an interruption is forgotten at once", snap(spot(), od(), setbacks=interrupted(60)),
     Policy(spot_hold_s=0), [("i-spot", "spot", "i-od", None)]),
    ("only spot, and dear: spot all the same", snap(spot(), prices={"i-spot": 2.2}), POLICY,
     [("i-spot", "spot", None, None)]),
    ("only spot, held: spot all the same (EC2 decides)", snap(spot(), setbacks=refused(10)), POLICY,
     [("i-spot", "spot", None, None)]),
    ("the cheaper spot first", snap(spot(), spot("i-spot2"), od()), POLICY, [("i-spot2", "spot", "i-od", None)]),
    ("on-demand only: as before markets", snap(od("i-b"), od("i-a")), POLICY, [("i-a", "on-demand", None, None)]),
    ("on-demand of two types: the cheaper one", snap(od("i-a"), Instance("i-b", "stopped", instance_type="g6e.xlarge")),
     POLICY, [("i-b", "on-demand", None, None)]),
    ("spot of two types: the cheaper per hour, not per share",
     snap(spot(), Instance("i-spot2", "stopped", instance_type="g6e.xlarge", market="spot"), od(),
          prices={"i-spot": 0.80, "i-spot2": 0.75}), POLICY, [("i-spot2", "spot", "i-od", None)]),
    ("two wanted: spot then on-demand, none left to stand by",
     snap(spot(), od(), visible=25), Policy(max_instances=2), [("i-spot", "spot", None, None),
                                                               ("i-od", "on-demand", None, None)]),
    ("spot cheap but stopping: waited for, no on-demand start", snap(spot(state="stopping"), od()), POLICY, []),
    ("spot stopping and dear: on-demand now", snap(spot(state="stopping"), od(), prices={"i-spot": 2.0}), POLICY,
     [("i-od", "on-demand", None, "spot_price")]),
    ("spot stopping, refused lately: on-demand now", snap(spot(state="stopping"), od(), setbacks=refused(100)),
     POLICY, [("i-od", "on-demand", None, "spot_refused")]),
    ("two wanted, one spot stopping: it is waited for and the on-demand one starts",
     snap(spot(state="stopping"), od(), visible=25), Policy(max_instances=2), [("i-od", "on-demand", None, None)]),
    ("two wanted, spot dear: on-demand first, spot next",
     snap(spot(), od(), visible=25, prices={"i-spot": 2.0}), Policy(max_instances=2),
     [("i-od", "on-demand", None, None), ("i-spot", "spot", None, None)]),
]


@pytest.mark.parametrize("case,snapshot,policy,expected", CHOICES, ids=[c[0] for c in CHOICES])
def test_market_choice(case, snapshot, policy, expected):
    decision = decide(snapshot, policy)
    assert [start(a) for a in decision.of_kind("start")] == expected


def test_a_fallback_start_says_why_with_the_prices():
    [action] = decide(snap(spot(), od(), prices={"i-spot": 2.0}), POLICY).of_kind("start")
    assert "instead of spot i-spot" in action.reason
    assert "spot $2.0000/h, 89% of on-demand $2.24/h, not under 80%" in action.reason
    [action] = decide(snap(spot(), od(), setbacks=refused(100)), POLICY).of_kind("start")
    assert "spot refused 100 s ago (There is no Spot capacity available), held off for 1800 s" in action.reason
    assert action.instead_of == "i-spot"
    [action] = decide(snap(spot(), od(), setbacks=interrupted(-90)), POLICY).of_kind("start")
    assert "spot interrupted in 90 s (spot interruption notice)" in action.reason
    [action] = decide(snap(spot(), od()), POLICY).of_kind("start")
    assert "spot $0.8200/h, 37% of on-demand $2.24/h" in action.reason


def test_spot_order_and_reasons():
    snapshot = snap(spot(), spot("i-spot2"), od(), prices={"i-spot": 0.82})
    order = start_order(snapshot.instances, snapshot, POLICY)
    assert [c.instance.instance_id for c in order] == ["i-spot", "i-od", "i-spot2"]
    assert order[2].passed_over.reason == "spot_price" and "unknown" in order[2].passed_over.why
    assert passed_over(spot(), snapshot, POLICY) is None


def beat(instance_id: str, *, notice_in_s: float | None = 100, jobs=(), age_s: float = 2) -> Heartbeat:
    at = None if notice_in_s is None else NOW + timedelta(seconds=notice_in_s)
    return Heartbeat(instance_id, ago(age_s), tuple(jobs), True, interruption_at=at)


# (case, snapshot, starts, stops) around a running spot instance whose worker may report a notice
INTERRUPTIONS = [
    ("a notice with jobs waiting: the on-demand replacement starts now",
     snap(spot(state="running"), od(), visible=2, beats=[beat("i-spot", jobs=("j1",))],
          setbacks=interrupted(0)), ("i-od",), ()),
    ("no notice, jobs waiting: the running spot instance copes",
     snap(spot(state="running"), od(), visible=2, beats=[beat("i-spot", notice_in_s=None, jobs=("j1",))]), (), ()),
    ("a notice with nothing waiting: no replacement, and the lifecycle leaves the stop to EC2",
     snap(spot(state="running", launched_s=7200), od(), visible=0, beats=[beat("i-spot", age_s=3600)]), (), ()),
    ("a notice whose time passed 5 minutes ago while it still runs: the lifecycle stops it",
     snap(spot(state="running"), od(), visible=0, beats=[beat("i-spot", notice_in_s=-300)]), (), ("i-spot",)),
    ("4 minutes past: still EC2's to stop",
     snap(spot(state="running"), od(), visible=0, beats=[beat("i-spot", notice_in_s=-240)]), (), ()),
    ("a notice from before its latest start no longer stands",
     snap(spot(state="running", launched_s=10), od(), visible=2,
          beats=[beat("i-spot", notice_in_s=-600, jobs=("j1",))]), (), ()),
]


@pytest.mark.parametrize("case,snapshot,starts,stops", INTERRUPTIONS, ids=[c[0] for c in INTERRUPTIONS])
def test_an_interrupted_instance_counts_for_nothing(case, snapshot, starts, stops):
    decision = decide(snapshot, POLICY)
    assert decision.starts == starts and decision.stops == stops


def test_the_replacement_of_an_interrupted_spot_instance_is_a_fallback():
    [start] = decide(snap(spot(state="running"), od(), visible=2, beats=[beat("i-spot")]), POLICY).of_kind("start")
    assert (start.instance_id, start.fallback, start.instead_of) == ("i-od", "spot_interrupted", "i-spot")
    assert "spot interrupted, EC2 stops it at" in start.reason


def test_an_interrupted_instance_is_said_and_numbered():
    decision = decide(snap(spot(state="running"), od(), visible=2, beats=[beat("i-spot")]), POLICY)
    assert Action("none", "i-spot", f"interrupted: its spot notice says EC2 stops it at "
                                    f"{(NOW + timedelta(seconds=100)).isoformat()}") in decision.actions
    assert decision.interrupted == ("i-spot",) and "interrupted=i-spot" in str(decision)


def test_interruption_at_reads_the_latest_run_only():
    running = spot(state="running", launched_s=60)
    assert interruption_at(running, beat("i-spot")) == NOW + timedelta(seconds=100)
    assert interruption_at(running, beat("i-spot", notice_in_s=-120)) is None
    assert interruption_at(running, beat("i-spot", notice_in_s=None)) is None
    assert interruption_at(running, None) is None


@pytest.mark.parametrize("kwargs", [{"spot_max_share": -0.1}, {"spot_max_share": 1.5}, {"spot_hold_s": -1},
                                    {"spot_hold_s": float("nan")}])
def test_policy_refuses_nonsense_markets(kwargs):
    with pytest.raises(ValueError):
        Policy(**kwargs)


@pytest.mark.parametrize("make", [
    lambda: Instance("i-a", "stopped", market="reserved"),
    lambda: Action("start", "i-a", "x", fallback="cheaper"),
])
def test_model_refuses_unknown_markets_and_reasons(make):
    with pytest.raises(ValueError):
        make()


def test_a_stopping_spot_instance_waited_for_says_so():
    decision = decide(snap(spot(state="stopping"), od()), POLICY)
    [waiting] = decision.of_kind("none")
    assert waiting.instance_id == "i-spot" and "waiting for it to stop" in waiting.reason


@pytest.mark.parametrize("case, snapshot, held, expected", [
    ("a cheap spot instance: its spot price", snap(spot(), od()), (), ("i-spot", "spot", 0.82)),
    ("the cheapest spot instance first", snap(spot(), spot("i-spot2"), od()), (), ("i-spot2", "spot", 0.5)),
    ("spot dear: the on-demand one at its price", snap(spot(), od(), prices={"i-spot": 2.0}), (),
     ("i-od", "on-demand", ON_DEMAND_USD)),
    ("spot lately refused: on-demand", snap(spot(), od(), setbacks=refused(60)), (), ("i-od", "on-demand",
                                                                                     ON_DEMAND_USD)),
    ("only a spot instance passed over: it, at its spot price", snap(spot(), prices={"i-spot": 2.0}), (),
     ("i-spot", "spot", 2.0)),
    ("a held instance is not started", snap(spot(), od()), ("i-spot",), ("i-od", "on-demand", ON_DEMAND_USD)),
    ("running ones are not starts", snap(spot(state="running"), od()), (), ("i-od", "on-demand", ON_DEMAND_USD)),
    ("one stopping is started once stopped", snap(spot(state="stopping"), od()), (), ("i-spot", "spot", 0.82)),
])
def test_the_next_start_and_what_it_would_pay(case, snapshot, held, expected):
    upcoming = next_start(snapshot, POLICY, held)
    assert (upcoming["instance_id"], upcoming["market"], upcoming["hourly_usd"]) == expected, case


def test_no_next_start_when_nothing_is_stopped_or_stopping():
    assert next_start(snap(spot(state="running"), od(state="pending")), POLICY) is None
