"""The GPU worker's watch on its spot instance's interruption notice: the instance metadata's spot/instance-action,
looked at every few seconds (AWS suggests five) on a thread, on a spot instance only."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from gpuorch.execution.interruption import Notice, parse_notice
from gpuorch.settings import Settings
from lifecycle.live.identity import InstanceMetadata, PlatformSigns, metadata_endpoint, read_platform_signs, runs_on_ec2
from lifecycle.model import SPOT

log = logging.getLogger(__name__)

INSTANCE_ACTION = "meta-data/spot/instance-action"
INSTANCE_LIFE_CYCLE = "meta-data/instance-life-cycle"


def spot_metadata(settings: Settings, *, signs: Callable[[], PlatformSigns] = read_platform_signs
                  ) -> InstanceMetadata | None:
    """The metadata service to watch for a notice: only where one is asked at all (EC2's own on EC2, or
    GPUORCH_INSTANCE_METADATA_URL), GPUORCH_INTERRUPTION_CHECK_SECONDS is not 0, and it says the instance is spot."""
    if not settings.interruption_check_seconds:
        return None
    endpoint = metadata_endpoint(settings.instance_metadata_url, runs_on_ec2(signs()))
    if endpoint is None:
        return None
    metadata = InstanceMetadata(endpoint)
    try:
        market = metadata.get(INSTANCE_LIFE_CYCLE)
    except OSError as exc:
        log.warning("the instance metadata service at %s did not say the instance's market (%s): no watch for a "
                    "spot interruption notice", endpoint, exc)
        return None
    return metadata if market == SPOT else None


class SpotNoticeWatch(threading.Thread):
    """Looks at the notice every `interval_s` until one comes, then calls `on_notice` with it once and ends.

    A look that fails is logged and tried again at the next one: the notice stays up until the interruption.
    """

    def __init__(self, metadata: InstanceMetadata, interval_s: float, on_notice: Callable[[Notice], None]):
        super().__init__(name="gpuorch-spot-notice", daemon=True)
        self.metadata, self.interval_s, self.on_notice = metadata, interval_s, on_notice
        self.stopping = threading.Event()

    def look(self) -> Notice | None:
        try:
            text = self.metadata.find(INSTANCE_ACTION)
            return parse_notice(text) if text else None
        except (OSError, ValueError) as exc:
            log.warning("spot interruption notice not read: %s", exc)
            return None

    def run(self) -> None:
        while not self.stopping.is_set():
            notice = self.look()
            if notice is not None:
                self.on_notice(notice)
                return
            self.stopping.wait(self.interval_s)

    def stop(self) -> None:
        self.stopping.set()
