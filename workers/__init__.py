"""Celery: the app, thin tasks, the retry policy and the outbox relay."""
