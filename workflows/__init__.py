"""The domain: the connected-vehicle state machine, the authorization workflow's steps,
the error codes and the events. Plain functions over a session and a provider adapter:
no Celery and no web framework in here."""
