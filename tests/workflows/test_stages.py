"""The stages of `pending`, nested states of the vehicle's one machine: every trigger from
every stage. A legal one sets the facts so that the stage read back from them is the
table's destination; an illegal one raises and sets nothing. The expected table is
written here independently of the module's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from store.models import ConnectedVehicle
from workflows.machine import IllegalTransition, Lifecycle, Stage, stage_of

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

# The facts of each stage.
FACTS: dict[Stage, dict[str, Any]] = {
    Stage.linking: {},
    Stage.awaiting_user: {"authorization_url": "https://provider/consent"},
    Stage.code_received: {"authorization_url": "u", "auth_code": "c", "code_received_at": NOW},
    Stage.code_claimed: {"authorization_url": "u", "auth_code": "c", "code_claimed_at": NOW},
    Stage.tokens_held: {"authorization_url": "u", "code_claimed_at": NOW, "access_token": "a"},
    Stage.returned: {"authorization_url": "u", "link_completed_at": NOW},
}
LEGAL = {
    (Stage.linking, "link_made"): Stage.awaiting_user,
    (Stage.awaiting_user, "receive_code"): Stage.code_received,
    (Stage.awaiting_user, "come_back"): Stage.returned,
    (Stage.code_received, "claim"): Stage.code_claimed,
    (Stage.code_claimed, "release"): Stage.code_received,
    (Stage.code_claimed, "buy_tokens"): Stage.tokens_held,
}
ARGS: dict[str, dict[str, Any]] = {
    "link_made": {"url": "https://provider/link"},
    "receive_code": {"code": "the-code"},
    "buy_tokens": {"write": lambda v: setattr(v, "access_token", "bought")},
}


def vehicle_at(stage: Stage) -> ConnectedVehicle:
    return ConnectedVehicle(status="pending", **FACTS[stage])


@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("trigger", sorted({t for _, t in LEGAL}))
def test_every_trigger_from_every_stage(stage: Stage, trigger: str) -> None:
    vehicle = vehicle_at(stage)
    stages = Lifecycle(None, vehicle)
    assert stages.stage is stage  # the facts say where it is
    assert stages.state == f"pending.{stage}"

    if (stage, trigger) in LEGAL:
        assert stages.may(trigger)
        stages.trigger_event(trigger, **ARGS.get(trigger, {}))
        assert stage_of(vehicle) is LEGAL[(stage, trigger)]
    else:
        assert not stages.may(trigger)
        before = dict(vars(vehicle))
        with pytest.raises(IllegalTransition):
            stages.trigger_event(trigger, **ARGS.get(trigger, {}))
        assert dict(vars(vehicle)) == before


def test_buying_tokens_spends_the_code() -> None:
    vehicle = vehicle_at(Stage.code_claimed)
    Lifecycle(None, vehicle).trigger_event("buy_tokens", **ARGS["buy_tokens"])
    assert (vehicle.access_token, vehicle.auth_code) == ("bought", None)


def test_a_stage_is_a_state_of_pending_only() -> None:
    """Status and stage cannot disagree: a vehicle that is not pending has no stage, and
    pending's triggers apply from every stage."""
    authorized = ConnectedVehicle(status="authorized", **FACTS[Stage.tokens_held])
    machine = Lifecycle(None, authorized)
    assert (machine.state, machine.stage) == ("authorized", None)
    assert not machine.may("buy_tokens") and not machine.may("claim")
    for stage in Stage:
        assert Lifecycle(None, vehicle_at(stage)).may("fail")
