"""Watching the workers: Celery events and remote control carried by SNS topics, and the Flower process."""
