"""Flower's URL table and template loader, extended with the console (idempotent)."""

from __future__ import annotations

import os
from typing import Any

from tornado import template
from tornado.web import url

__all__ = ["TEMPLATES", "install"]

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")

# Added to Flower's navigation bar, after its own first links (Workers, Tasks, Broker).
_LINKS = b"""
        <li class="nav-item">
          <a class="nav-link{% if active_tab == 'cv-vehicles' %} active{% end %}"
            id="cv-nav-vehicles" href="{{ reverse_url('cv-vehicles') }}">Vehicles</a>
        </li>
        <li class="nav-item">
          <a class="nav-link{% if active_tab == 'cv-redrives' %} active{% end %}"
            id="cv-nav-redrives" href="{{ reverse_url('cv-redrives') }}">Re-drives</a>
        </li>
      </ul>"""


class ConsoleLoader(template.Loader):
    """Flower's templates, and ours beside them (ours first): our pages extend Flower's
    `base.html`, and its `navbar.html` gets the console's links."""

    def _create_template(self, name: str) -> template.Template:
        ours = os.path.join(TEMPLATES, name)
        path = ours if os.path.isfile(ours) else os.path.join(self.root, name)
        with open(path, "rb") as f:
            text = f.read()
        if name == "navbar.html" and b"cv-nav-vehicles" not in text:
            text = text.replace(b"\n      </ul>", _LINKS, 1)
        return template.Template(text, name=name, loader=self)


def install(handlers: list[Any]) -> None:
    from flower.views import BaseHandler
    from flower.views.tasks import TaskView

    from workers.console import pages
    from workers.flower_redrive import RedriveHandler, RedriveTaskView

    def loader(self: Any, template_path: str) -> template.Loader:
        settings = self.application.settings
        kwargs = {k: settings[k] for k in ("autoescape", "whitespace") if k in settings}
        return ConsoleLoader(template_path, **kwargs)

    BaseHandler.create_template_loader = loader

    for i, handler in enumerate(handlers):
        if getattr(handler, "name", None) == "task" and handler.target is TaskView:
            handlers[i] = url(r"/task/(.+)", RedriveTaskView, name="task")
    ours = [
        url(r"/cv/redrive/(.+)", RedriveHandler, name="cv-redrive"),
        url(r"/cv/vehicles", pages.VehiclesPage, name="cv-vehicles"),
        url(r"/cv/vehicles/([^/]+)", pages.VehiclePage, name="cv-vehicle"),
        url(r"/cv/vehicles/([^/]+)/redrive", pages.VehicleRedrive, name="cv-vehicle-redrive"),
        url(r"/cv/redrives", pages.RedrivesPage, name="cv-redrives"),
        url(r"/cv/redrives/([^/]+)", pages.RedriveRunPage, name="cv-redrive-run"),
        url(r"/cv/redrives/([^/]+)/(stop|resume)", pages.RedriveRunState, name="cv-redrive-state"),
    ]
    present = {getattr(h, "name", None) for h in handlers}
    # first: Flower's table ends with a catch-all 404
    handlers[:0] = [h for h in ours if h.name not in present]
