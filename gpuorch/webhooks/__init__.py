"""Webhooks: a job's status changes POSTed to its caller, signed the Standard Webhooks way, retried for hours."""
