"""What GPU instances cost: on-demand prices per hour, by instance type."""

from __future__ import annotations

G6E_2XLARGE = "g6e.2xlarge"
# On-demand prices (us-east-1, per hour); a type not listed is billed at the g6e.2xlarge price.
HOURLY_USD = {G6E_2XLARGE: 2.24, "g6e.xlarge": 1.861, "g6.2xlarge": 0.978, "g5.2xlarge": 1.212}


def hourly_price(instance_type: str) -> float:
    return HOURLY_USD.get(instance_type, HOURLY_USD[G6E_2XLARGE])
