"""The replaced system's rule, for comparison: a CloudWatch alarm on the queue's visible count stops the GPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from lifecycle.model import Action, Instance

AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


@dataclass(frozen=True)
class ReplacedRule:
    """The CloudWatch alarm's parameters: `periods` periods of `period_s` seconds, one sample a `sample_s`.

    The alarm `QueueEmptyFor30Min` watched SQS's ApproximateNumberOfMessagesVisible (sampled once a
    minute) in 5-minute periods and went to ALARM when six periods in a row saw nothing visible; its
    action (a Lambda) then stopped the instance if it was `running`, whatever it was doing: the count
    is blind to messages in flight. A CloudWatch alarm acts only when its state changes, so it stops
    the instance once per transition into ALARM. The instance was started only when the API received
    a submission and found it `stopped` (a `stopping` instance could not be started, and nothing
    retried).
    """

    period_s: float = 300.0
    periods: int = 6
    sample_s: float = 60.0

    @property
    def name(self) -> str:
        return "replaced"


def period_empty(samples: Sequence[int]) -> bool:
    """A period breaches `== 0` when its maximum sample is 0 (so does its average: counts are never negative)."""
    return max(samples, default=0) == 0


def alarm_state(period_maxima: Sequence[int], rule: ReplacedRule = ReplacedRule()) -> AlarmState:
    """The alarm's state from the maxima of the complete periods so far, oldest first."""
    if len(period_maxima) < rule.periods:
        return "INSUFFICIENT_DATA"
    return "ALARM" if all(m == 0 for m in period_maxima[-rule.periods:]) else "OK"


def on_alarm(previous: AlarmState, current: AlarmState, instances: Sequence[Instance]) -> list[Action]:
    """The Lambda on a transition into ALARM: stop every `running` instance, in flight or not."""
    if current != "ALARM" or previous == "ALARM":
        return []
    return [Action("stop", i.instance_id, "queue empty for 30 minutes (CloudWatch alarm)")
            for i in instances if i.state == "running"]


def on_submit(instances: Sequence[Instance]) -> list[Action]:
    """The API on a submission: start a `stopped` instance; a `stopping` one cannot be started."""
    if any(i.state in ("pending", "running") for i in instances):
        return []
    stopped = [i for i in instances if i.state == "stopped"]
    if stopped:
        return [Action("start", stopped[0].instance_id, "submission found the GPU stopped")]
    return [Action("none", None, "submission found the GPU stopping: the start fails and is not retried")]
