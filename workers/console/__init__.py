"""The operators' console inside Flower (SPEC §8): the Vehicles view, one vehicle's
page, bulk re-drives, and Flower's own task page telling what became of a failed step's
vehicle. Everything it shows is read from the database, so it is true after any
restart (Flower keeps its task list in memory only). Behind Flower's login; its forms
carry Flower's XSRF token.

Flower has no hooks for pages of one's own: :func:`install` puts the handlers in its URL
table before its app is built (``workers.flower``), and a template loader that looks in
``templates/`` here first adds the console's links to Flower's navigation bar."""

from workers.console.install import install

__all__ = ["install"]
