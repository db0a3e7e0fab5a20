"""providers.data.read_parts: each part read on its own, an odd shape costing that part."""

from __future__ import annotations

import pytest

from providers.data import Odometer, Part, own_words, read_parts


def _odd() -> Part | None:
    raise KeyError("distance")


def _ok() -> Part | None:
    return Odometer(12.0)


def test_an_odd_shape_costs_its_part_and_says_so_without_values() -> None:
    """Given a reader that raises on an odd shape, when the parts are read, then that part
    is None with a line naming the exception's type only, and the others are read."""
    data = read_parts({"battery", "odometer"}, {"battery": _odd, "odometer": _ok})

    assert data.battery is None and data.odometer == Odometer(12.0)
    assert data.problems == ("battery: unexpected shape (KeyError)",)


def test_only_the_parts_asked_for_in_name_order_with_the_readers_words() -> None:
    data = read_parts(
        ["odometer", "location", "charge"],
        {"charge": _odd, "location": lambda: None, "odometer": _odd, "battery": _odd},
        problem=own_words,
        absent="not in the answer",
    )

    assert data.problems == (
        "charge: 'distance'",
        "location: not in the answer",
        "odometer: 'distance'",
    )


def test_a_fault_that_is_no_odd_shape_is_not_swallowed() -> None:
    def broken() -> Part | None:
        raise RuntimeError("a bug, not a shape")

    with pytest.raises(RuntimeError):
        read_parts({"odometer"}, {"odometer": broken})
