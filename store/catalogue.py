"""The catalogue of EV models that ships with the service, and how operators extend it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from store.models import CatalogueVehicle

__all__ = ["SHIPPED", "load_catalogue"]

SHIPPED = Path(__file__).with_name("catalogue.json")
_FIELDS = ("make", "model", "year_from", "year_to", "providers")


def load_catalogue(session: Session, path: Path = SHIPPED) -> int:
    """Insert or update every entry of a JSON catalogue file; returns how many."""
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    for entry in entries:
        missing = [f for f in ("id", "make", "model", "providers") if f not in entry]
        if missing:
            raise ValueError(f"catalogue entry {entry.get('id')!r} lacks {', '.join(missing)}")
        row = session.get(CatalogueVehicle, entry["id"]) or CatalogueVehicle(id=entry["id"])
        for field in _FIELDS:
            setattr(row, field, entry.get(field))
        session.add(row)
    session.commit()
    return len(entries)
