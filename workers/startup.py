"""The GPU worker's start-up: its checks, repeated while a failure may pass by itself, and the refusal it records
for the lifecycle (which stops and holds the instance) when one cannot."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gpuorch.clock import Clock, utc_now
from gpuorch.errors import ConfigurationError
from gpuorch.services import Services
from lifecycle.live.refusals import RefusalStore, configuration_parts, digest, fingerprint
from lifecycle.model import Refusal
from workers.checks import Problem, model_problems, template_findings, visibility_problems, warmup_problems

log = logging.getLogger(__name__)

# What the checks found: take jobs, check again (every problem may pass, and the retry time is not over), refuse.
PASS, RETRY, REFUSE = "pass", "retry", "refuse"
# Between two rounds of checks that may pass: model files land within seconds of each other.
RETRY_INTERVAL_S = 10.0


def next_step(problems: Sequence[Problem], elapsed_s: float, retry_s: float) -> str:
    """Pure: what the worker does after a round of checks `elapsed_s` into its start. A problem that cannot pass
    by itself is refused at once (waiting would only be paid for); problems that may pass are checked again until
    `retry_s` has passed."""
    if not problems:
        return PASS
    if any(not problem.may_pass for problem in problems):
        return REFUSE
    return RETRY if elapsed_s < retry_s else REFUSE


@dataclass(frozen=True)
class Findings:
    """One round of checks: its problems, and what they were checked against (the refusal's fingerprint parts)."""

    problems: tuple[Problem, ...]
    checked: Mapping[str, str] = field(default_factory=dict)


def check_round(services: Services, visibility_timeout: int) -> Findings:
    """The queue's visibility timeout, the declared model files, the templates against ComfyUI's catalogue, then
    (when those pass) the warm-up; with the identity of the settings, workflows and catalogue checked."""
    settings = services.settings
    problems = [Problem(p) for p in visibility_problems(visibility_timeout, settings.task_time_limit)]
    problems += [Problem(p) for p in model_problems(services)]  # the sync ran before: a missing file stays missing
    found, catalogue = template_findings(services)
    problems += found
    if not problems and settings.warmup_workflow:
        problems += warmup_problems(services)
    checked = {"queue_visibility_timeout": str(visibility_timeout),
               "catalogue": digest(dict(catalogue.object_info)) if catalogue is not None else "unread"}
    try:
        checked.update(configuration_parts(settings, services.workflows))
    except ConfigurationError:
        checked["workflows"] = "unreadable"  # the problem already says why
    return Findings(tuple(problems), checked)


def run_checks(check: Callable[[], Findings], retry_s: float, *, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> Findings:
    """Run `check` until it passes, finds a problem that cannot pass, or `retry_s` has passed; its last findings."""
    started = clock()
    while True:
        findings = check()
        elapsed = clock() - started
        if next_step(findings.problems, elapsed, retry_s) != RETRY:
            return findings
        log.warning("start-up checks: %s; this may pass by itself: checking again for %.0f s more",
                    "; ".join(p.reason for p in findings.problems), retry_s - elapsed)
        sleep(max(0.0, min(RETRY_INTERVAL_S, retry_s - elapsed)))


def record_refusal(store: RefusalStore, instance_id: str, findings: Findings, *, clock: Clock = utc_now) -> Refusal:
    """Log each problem, then record the refusal where the lifecycle and the API read it."""
    for problem in findings.problems:
        log.error("refusing to start: %s", problem.reason)
    refusal = Refusal(instance_id, clock(), tuple(p.reason for p in findings.problems), fingerprint(findings.checked))
    store.record(refusal, findings.checked)
    log.error("refusal of %s recorded (fingerprint %s): the lifecycle stops this instance and holds it until its "
              "configuration changes or an operator starts it (gpuorch gpu start %s)", instance_id,
              refusal.fingerprint[:12], instance_id)
    return refusal
