"""The GPU lifecycle: the pure start/stop decision, EC2 billing, and a trace simulator to choose the policy by."""

from lifecycle.autostop import decide
from lifecycle.billing import CostReport, Run, billed_seconds, dollars, report
from lifecycle.model import DEFAULT_IDLE_STOP_S, Action, Decision, Heartbeat, Instance, Policy, Snapshot
from lifecycle.optimum import optimum
from lifecycle.policies import DEFAULT_POLICY, PolicyError, named_policy, parse_policy
from lifecycle.replaced import ReplacedRule
from lifecycle.scenario import SimulationParams, SimulationResult
from lifecycle.simulate import simulate, simulate_command
from lifecycle.workload import Job, TraceError, read_trace

__all__ = [
    "Action", "CostReport", "DEFAULT_IDLE_STOP_S", "DEFAULT_POLICY", "Decision", "Heartbeat", "Instance",
    "Job", "Policy", "PolicyError", "ReplacedRule", "Run", "SimulationParams", "SimulationResult",
    "Snapshot", "TraceError", "billed_seconds", "decide", "dollars", "named_policy", "optimum",
    "parse_policy", "read_trace", "report", "simulate", "simulate_command",
]
