"""The stages of `pending`, as a machine: where the user's consent and its validation
stand. Clients see `pending` throughout; the workflow asks this table what may happen
next (``may("claim")``) instead of re-reading columns in if-chains.

The stage is not stored: it is read from the facts that carry its data (the link, the
code, when it was claimed, the tokens, when the user came back), so it can never
disagree with them, and the sweep's partial indexes read the same facts. A trigger's
callback sets those facts; ``stage_of`` then reads the new stage back.

    linking ──link_made──► awaiting_user ──receive_code──► code_received ◄──release──┐
                                 │                              │                    │
                                 └──come_back──► returned       └──claim──► code_claimed
                                                                                     │
                                                          tokens_held ◄──buy_tokens──┘
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from transitions import EventData

from store.models import ConnectedVehicle, utcnow
from workflows.machine import TableMachine

__all__ = ["STAGES", "Stage", "Stages", "stage_of"]


class Stage(StrEnum):
    linking = "linking"  # the provider makes the consent link (a job: Enode)
    awaiting_user = "awaiting_user"  # the user is at the provider
    code_received = "code_received"  # a single-use code to spend
    code_claimed = "code_claimed"  # a run is spending it (committed before it does)
    tokens_held = "tokens_held"  # bought; the account is being validated
    returned = "returned"  # back from a link flow (no code); the account is being validated


S = Stage
STAGES: list[dict[str, Any]] = [
    # (trigger, from, to, the callback that sets the facts)
    dict(zip(("trigger", "source", "dest", "after"), row, strict=True))
    for row in [
        ("link_made", S.linking, S.awaiting_user, "_link"),
        ("receive_code", S.awaiting_user, S.code_received, "_code"),
        ("come_back", S.awaiting_user, S.returned, "_back"),
        ("claim", S.code_received, S.code_claimed, "_claim"),
        # the code was not spent (the request never left, or was refused): claim again
        ("release", S.code_claimed, S.code_received, "_free"),
        ("buy_tokens", S.code_claimed, S.tokens_held, "_buy"),
    ]
]


def stage_of(vehicle: ConnectedVehicle) -> Stage:
    """The stage a pending vehicle's facts say it is at."""
    if vehicle.access_token:
        return Stage.tokens_held
    if vehicle.link_completed_at is not None:
        return Stage.returned
    if vehicle.code_claimed_at is not None:
        return Stage.code_claimed
    if vehicle.auth_code:
        return Stage.code_received
    if not vehicle.authorization_url:
        return Stage.linking
    return Stage.awaiting_user


class Stages(TableMachine):
    """The stage machine over one pending vehicle the caller holds locked. Triggers'
    keyword arguments: ``link_made(url=…)``, ``receive_code(code=…)``,
    ``claim(owner=<the claiming process's heartbeat id, or None>)``,
    ``buy_tokens(write=<callable that writes the tokens>)``."""

    state: Stage

    def __init__(self, vehicle: ConnectedVehicle) -> None:
        self.vehicle = vehicle
        self.state = stage_of(vehicle)

    # -- callbacks: the facts that make the stage ------------------------------------------

    def _link(self, event: EventData) -> None:
        self.vehicle.authorization_url = event.kwargs["url"]

    def _code(self, event: EventData) -> None:
        self.vehicle.auth_code = event.kwargs["code"]
        self.vehicle.code_received_at = utcnow()

    def _back(self, event: EventData) -> None:
        self.vehicle.link_completed_at = utcnow()

    def _claim(self, event: EventData) -> None:
        self.vehicle.code_claimed_at = utcnow()
        # the process spending it, when it beats (workflows.liveness): if it dies, the
        # sweep knows at once that this code may have left
        self.vehicle.code_claimed_by = event.kwargs.get("owner")

    def _free(self, event: EventData) -> None:
        self.vehicle.code_claimed_at = None
        self.vehicle.code_claimed_by = None

    def _buy(self, event: EventData) -> None:
        event.kwargs["write"](self.vehicle)
        self.vehicle.auth_code = None  # spent: of no further use


Stages.build(Stage, STAGES)
