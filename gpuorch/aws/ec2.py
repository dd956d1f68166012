"""EC2 instance ids: what one looks like, so that nothing else is ever sent to EC2 or taken for one."""

from __future__ import annotations

import re

# "i-" and 8 hex digits (instances made before 2016) or 17 (every one since), in lower case.
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")


def is_instance_id(text: str) -> bool:
    return INSTANCE_ID.fullmatch(text) is not None
