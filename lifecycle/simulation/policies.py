"""Named lifecycle policies (`default`, `replaced`, `fixed-<minutes>`) and `name,key=value` overrides."""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

from gpuorch.errors import ConfigurationError
from lifecycle.model import Policy
from lifecycle.simulation.replaced import ReplacedRule

DEFAULT_POLICY = Policy()
_FIXED = re.compile(r"fixed-(\d+(?:\.\d+)?)")
_FIELDS = {f.name: f for f in dataclasses.fields(Policy)}
_INTEGERS = {"min_instances", "max_instances", "backlog_per_instance"}


class PolicyError(ConfigurationError, ValueError):
    """A policy name or override that names no policy."""


def policy_names() -> tuple[str, ...]:
    return ("default", "replaced", "fixed-<minutes>")


def named_policy(name: str) -> Policy | ReplacedRule:
    """`default` (the project's), `replaced` (the CloudWatch rule), or `fixed-<minutes>` (the default
    with that idle time)."""
    if name == "default":
        return DEFAULT_POLICY
    if name == "replaced":
        return ReplacedRule()
    match = _FIXED.fullmatch(name)
    if match:
        return dataclasses.replace(DEFAULT_POLICY, idle_stop_s=float(match.group(1)) * 60.0)
    raise PolicyError(f"unknown policy {name!r}; known: {', '.join(policy_names())}")


def _value(key: str, raw: object) -> object:
    if key == "monthly_budget_usd" and (raw is None or str(raw).strip().lower() in ("", "none")):
        return None
    try:
        return int(str(raw)) if key in _INTEGERS else float(str(raw))
    except ValueError:
        raise PolicyError(f"{key}={raw!r}: expected {'an integer' if key in _INTEGERS else 'a number'}") from None


def parse_policy(spec: str | Mapping[str, object] | Policy | ReplacedRule | None) -> tuple[str, Policy | ReplacedRule]:
    """(display name, policy) from a name, `name,key=value,...` (a name is optional, `default` if
    absent; keys are `Policy` fields), a mapping of overrides of the default, or a policy itself."""
    if spec is None:
        return "default", DEFAULT_POLICY
    if isinstance(spec, ReplacedRule):
        return "replaced", spec
    if isinstance(spec, Policy):
        return ("default" if spec == DEFAULT_POLICY else "custom"), spec
    if isinstance(spec, str):
        names = [t.strip() for t in spec.split(",") if t.strip() and "=" not in t]
        pairs = [t.split("=", 1) for t in spec.split(",") if "=" in t]
        overrides = {k.strip(): v.strip() for k, v in pairs}
        if len(names) > 1:
            raise PolicyError(f"{spec!r}: one policy name at most, then key=value overrides")
        name = names[0] if names else "default"
    else:
        name, overrides = "default", dict(spec)
    base = named_policy(name)
    if not overrides:
        return name, base
    if isinstance(base, ReplacedRule):
        raise PolicyError("the replaced rule takes no overrides")
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise PolicyError(f"unknown policy setting(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    try:
        policy = dataclasses.replace(base, **{k: _value(k, v) for k, v in overrides.items()})
    except ValueError as exc:
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(str(exc)) from None
    return name + "".join(f",{k}={v}" for k, v in overrides.items()), policy
