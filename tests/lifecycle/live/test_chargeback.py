"""Chargeback: a period's cost split by owner, and when a monthly cap resets."""

from datetime import datetime, timezone

import pytest

from lifecycle.live.chargeback import OwnerCost, owner_costs, seconds_to_next_month


@pytest.mark.parametrize("work,expected", [
    ([], []),
    ([("a", None)], []),  # never ran on the GPU: nobody is charged
    ([("a", 30.0), ("b", 10.0)], [OwnerCost("a", 1, 30.0, 7.5), OwnerCost("b", 1, 10.0, 2.5)]),
    ([("a", 10.0), (None, 10.0), ("a", 20.0)], [OwnerCost("a", 2, 30.0, 7.5), OwnerCost(None, 1, 10.0, 2.5)]),
])
def test_the_cost_follows_the_gpu_seconds(work, expected):
    assert owner_costs(10.0, work) == expected


@pytest.mark.parametrize("now,seconds", [
    (datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc), 2),
    (datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc), 3601),
    (datetime(2026, 2, 1, tzinfo=timezone.utc), 28 * 86400 + 1),
])
def test_a_monthly_cap_resets_with_the_next_utc_month(now, seconds):
    assert seconds_to_next_month(now) == seconds
