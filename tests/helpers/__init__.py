"""What the tests share that is not a fixture: this run's own database and Redis db, the
API's documents and calls, rows written straight to the store, the webhook receiver, the
journeys and tables over every provider, the end-to-end stack. A test module imports
from here (and its fixtures come from tests/fixtures.py and the conftests), never from
another test module.

Nothing is imported here: tests.conftest imports `tests.helpers.run` before it sets the
environment, and no module of the service may be imported before that.
"""
