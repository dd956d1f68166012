"""The pure parts of the limits and keys: GCRA decisions, the backlog refusal, Retry-After, token shapes."""

import pytest

from gpuorch.access.backlog import backlog_refusal
from gpuorch.access.keys import InvalidKey, check_fields, new_token, parse_token, token_hash
from gpuorch.access.ratelimit import Limit, gcra, retry_after_header

SIX = Limit(per_minute=6, burst=3)  # one every 10 s, three at once


@pytest.mark.parametrize(
    ("tat", "now", "allowed", "new_tat", "retry_after"),
    [
        (None, 100.0, True, 110.0, 0.0),  # a key's first request
        (50.0, 100.0, True, 110.0, 0.0),  # idle since: the past TAT counts as now
        (110.0, 100.0, True, 120.0, 0.0),  # second of the burst
        (120.0, 100.0, True, 130.0, 0.0),  # third: the burst is spent
        (130.0, 100.0, False, 130.0, 10.0),  # fourth at once: wait one interval
        (130.0, 109.0, False, 130.0, 1.0),
        (130.0, 110.0, True, 140.0, 0.0),  # one interval later: one more
    ],
)
def test_gcra(tat, now, allowed, new_tat, retry_after):
    decision = gcra(tat, now, SIX)
    assert (decision.allowed, decision.tat, pytest.approx(decision.retry_after)) == (allowed, new_tat, retry_after)


def test_gcra_a_burst_of_one_is_a_plain_pace():
    first = gcra(None, 0.0, Limit(60, 1))
    assert first.allowed and not gcra(first.tat, 0.5, Limit(60, 1)).allowed and gcra(first.tat, 1.0, Limit(60, 1)).allowed


@pytest.mark.parametrize(("seconds", "header"), [(0.0, 1), (0.1, 1), (1.0, 1), (1.01, 2), (9.5, 10)])
def test_retry_after_is_whole_seconds_rounded_up_and_never_zero(seconds, header):
    assert retry_after_header(seconds) == header


@pytest.mark.parametrize(
    ("depth", "limit", "refused"), [(0, 2, False), (1, 2, False), (2, 2, True), (50, 2, True), (10_000, 0, False)]
)
def test_backlog_refusal(depth, limit, refused):
    reason = backlog_refusal(depth, limit)
    assert (reason is not None) == refused
    if refused:
        assert f"{depth} jobs" in reason and f"limit of {limit}" in reason


def test_a_token_names_its_key_id_and_only_its_hash_is_kept():
    key_id, token = new_token()
    assert token.startswith(f"gpo_{key_id}_") and len(token) > 50
    assert parse_token(token) == key_id
    assert token_hash(token) != token and len(token_hash(token)) == 64
    assert new_token()[1] != token


@pytest.mark.parametrize("token", ["", "gpo_", "gpo_abc", "gpo_0123456789ab", "gpo_0123456789ab_", "xyz_0123456789ab_s",
                                   "gpo_0123456789AB_s", "gpo_0123456789abc_s"])
def test_malformed_tokens_name_no_key(token):
    assert parse_token(token) is None


@pytest.mark.parametrize(
    ("owner", "role", "rate", "burst", "field"),
    [("", "user", None, None, "owner"), ("has space", "user", None, None, "owner"), ("a" * 65, "user", None, None, "owner"),
     ("alice", "admin", None, None, "role"), ("alice", "user", -1, None, "rate_per_minute"),
     ("alice", "user", None, 0, "burst")],
)
def test_bad_key_fields_are_named(owner, role, rate, burst, field):
    with pytest.raises(InvalidKey, match=f"^{field}:"):
        check_fields(owner, role, rate, burst)
