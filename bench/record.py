"""The bench's figures: each a value beside its baseline from the same run, the ratio,
the goal and whether it was met; printed as they come and written to a JSON file."""

from __future__ import annotations

import json
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Figure",
    "Goal",
    "Results",
    "at_least",
    "below",
    "median",
    "ratio_at_least",
    "ratio_at_most",
    "ratio_below",
]


@dataclass(frozen=True)
class Goal:
    text: str
    check: Callable[[float, float | None, float | None], bool]  # value, baseline, ratio


def ratio_at_least(x: float) -> Goal:
    return Goal(f">= {x:g} x baseline", lambda v, b, r: r is not None and r >= x)


def ratio_at_most(x: float) -> Goal:
    return Goal(f"<= {x:g} x baseline", lambda v, b, r: r is not None and r <= x)


def ratio_below(x: float) -> Goal:
    return Goal(f"< {x:g} x baseline", lambda v, b, r: r is not None and r < x)


def at_least(x: float, unit: str = "") -> Goal:
    return Goal(f">= {x:g}{unit}", lambda v, b, r: v >= x)


def below(x: float, unit: str = "") -> Goal:
    return Goal(f"< {x:g}{unit}", lambda v, b, r: v < x)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    goal: Goal | None = None
    note: str = ""
    error: str | None = None
    runs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        """None for a figure shown for information (no goal)."""
        if self.error is not None or self.value is None:
            return False
        if self.goal is None:
            return None
        return self.goal.check(self.value, self.baseline, self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "baseline": _round(self.baseline),
            "ratio": _round(self.ratio),
            "goal": self.goal.text if self.goal else None,
            "met": self.met,
            "runs": [_round(r) for r in self.runs],
            "note": self.note or None,
            "error": self.error,
        }

    def line(self) -> str:
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        if self.error is not None:
            return f"  {self.name:<52} FAILED: {self.error}"
        ratio = f"{self.ratio:.3g}x" if self.ratio is not None else "-"
        return (
            f"  {self.name:<52} {_fmt(self.value):>9} {self.unit:<6} "
            f"baseline {_fmt(self.baseline):>9}  ratio {ratio:>7}  "
            f"goal {self.goal.text if self.goal else '-':<20} {verdict}"
            + (f"  ({self.note})" if self.note else "")
        )


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


class Results:
    """Figures in the order they were taken; `part()` keeps one failing part from ending
    the run."""

    def __init__(self, parts: int) -> None:
        self.figures: list[Figure] = []
        self.parts = parts
        self._part = 0

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    @contextmanager
    def part(self, title: str) -> Iterator[None]:
        """A part of the run: announced, timed; an exception is recorded as a failed
        figure named `title` (met false, with the error) and the run goes on."""
        self._part += 1
        print(f"[{self._part}/{self.parts}] {title} ...", flush=True)
        start = time.monotonic()
        try:
            yield
        except Exception as exc:
            traceback.print_exc()
            self.add(Figure(title, None, "", error=f"{type(exc).__name__}: {exc}"[:500]))
        print(f"      ({time.monotonic() - start:.0f}s)", flush=True)

    def table(self) -> str:
        return "\n".join(f.line() for f in self.figures)

    def write(self, path: Path, conditions: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([f.as_json() for f in self.figures], indent=2) + "\n")
        path.with_name(path.stem + ".conditions.json").write_text(
            json.dumps(conditions, indent=2) + "\n"
        )
