"""Named policies and `name,key=value` overrides, as `gpuorch simulate --policy` takes them."""

import pytest

from lifecycle.model import DEFAULT_IDLE_STOP_S, Policy
from lifecycle.simulation.policies import DEFAULT_POLICY, PolicyError, named_policy, parse_policy
from lifecycle.simulation.replaced import ReplacedRule


def test_the_default_is_the_documented_one():
    assert DEFAULT_POLICY == Policy() and DEFAULT_POLICY.idle_stop_s == DEFAULT_IDLE_STOP_S
    assert DEFAULT_POLICY.max_instances == 1 and DEFAULT_POLICY.min_instances == 0


@pytest.mark.parametrize("spec,name,policy", [
    (None, "default", Policy()),
    ("default", "default", Policy()),
    ("replaced", "replaced", ReplacedRule()),
    ("fixed-10", "fixed-10", Policy(idle_stop_s=600)),
    ("fixed-2.5", "fixed-2.5", Policy(idle_stop_s=150)),
    ("fixed-10,max_instances=2", "fixed-10,max_instances=2", Policy(idle_stop_s=600, max_instances=2)),
    ("idle_stop_s=120", "default,idle_stop_s=120", Policy(idle_stop_s=120)),
    (" max_instances = 3 , backlog_per_instance=5", "default,max_instances=3,backlog_per_instance=5",
     Policy(max_instances=3, backlog_per_instance=5)),
    ("monthly_budget_usd=150", "default,monthly_budget_usd=150", Policy(monthly_budget_usd=150.0)),
    ("monthly_budget_usd=none", "default,monthly_budget_usd=none", Policy()),
    ({"idle_stop_s": 60}, "default,idle_stop_s=60", Policy(idle_stop_s=60)),
    (Policy(idle_stop_s=1), "custom", Policy(idle_stop_s=1)),
    (ReplacedRule(), "replaced", ReplacedRule()),
])
def test_parse_policy(spec, name, policy):
    assert parse_policy(spec) == (name, policy)


@pytest.mark.parametrize("spec,message", [
    ("nightly", "unknown policy 'nightly'"),
    ("fixed-", "unknown policy"),
    ("default,replaced", "one policy name at most"),
    ("replaced,max_instances=2", "takes no overrides"),
    ("fixed-10,bogus=1", "unknown policy setting"),
    ("max_instances=two", "expected an integer"),
    ("idle_stop_s=soon", "expected a number"),
    ("min_instances=3", "max_instances must be at least"),
])
def test_bad_policies_are_refused_by_meaning(spec, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(spec)


def test_named_policy():
    assert named_policy("fixed-30").idle_stop_s == 1800
    with pytest.raises(PolicyError):
        named_policy("fixed-x")
