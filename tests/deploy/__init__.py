"""Deployment artifacts: IAM policies, systemd units, the container image definition."""
