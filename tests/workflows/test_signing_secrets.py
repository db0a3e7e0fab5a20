"""The cache of clients' signing secrets: the client's row is read and decrypted once per
TTL, the JWT is checked every time, and a changed secret is seen (at once in this
process, within the TTL elsewhere, at once for tokens signed with the new one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import update

from store.db import Database
from store.models import Client
from tests.helpers.store import statements
from workflows.clients import create_client, rotate_signing_secret
from workflows.errors import DomainError, ErrorCode
from workflows.signing_secrets import SigningSecrets
from workflows.user_tokens import mint_user_token, verify_user_token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(clean: Database) -> Client:
    with clean.session() as session:
        return create_client(session, "Acme")


def verify(cache: SigningSecrets, db: Database, client_id: str, token: str) -> tuple[str, int]:
    """Who the token is, and how many statements it took."""
    with statements(db) as sent:
        who = cache.verify(client_id, token)
        if who is None:
            with db.session() as session:
                who = cache.verify_from(session, client_id, token)
    return who.user_id, len(sent)


def token_for(client: Client, user: str = "u1", ttl: timedelta = timedelta(hours=1)) -> str:
    return mint_user_token(client, user, ttl)


def signed_with(secret: str, user: str = "u1") -> str:
    """A token signed with `secret` (no Client object made: that would be a change)."""
    claims = {"sub": user, "exp": datetime.now(UTC) + timedelta(hours=1)}
    return jwt.encode(claims, secret, algorithm="HS256")


def test_a_cached_client_is_verified_without_the_database(clean: Database, client: Client) -> None:
    cache = SigningSecrets(ttl=30, clock=Clock())
    assert verify(cache, clean, client.id, token_for(client)) == ("u1", 1)
    assert verify(cache, clean, client.id, token_for(client, "u2")) == ("u2", 0)


def test_the_token_itself_is_checked_every_time(clean: Database, client: Client) -> None:
    cache = SigningSecrets(ttl=30, clock=Clock())
    verify(cache, clean, client.id, token_for(client))

    with pytest.raises(DomainError) as expired:
        cache.verify(client.id, token_for(client, ttl=timedelta(seconds=-1)))
    with pytest.raises(DomainError) as forged:
        cache.verify(client.id, signed_with("x" * 43))

    assert expired.value.code is ErrorCode.AUTH_TOKEN_EXPIRED
    assert forged.value.code is ErrorCode.AUTH_TOKEN_INVALID


def test_a_rotation_in_this_process_is_seen_at_once(clean: Database, client: Client) -> None:
    cache = SigningSecrets(ttl=30, clock=Clock())
    old_token = token_for(client)
    verify(cache, clean, client.id, old_token)

    with clean.session() as session:
        rotated = rotate_signing_secret(session, client.id)

    assert cache.verify(client.id, old_token) is None  # forgotten: read again
    with clean.session() as session, pytest.raises(DomainError):
        cache.verify_from(session, client.id, old_token)
    assert verify(cache, clean, client.id, token_for(rotated)) == ("u1", 0)


def test_a_rotation_elsewhere_is_seen_within_the_ttl(clean: Database, client: Client) -> None:
    clock = Clock()
    cache = SigningSecrets(ttl=30, clock=clock)
    old_token = token_for(client)
    verify(cache, clean, client.id, old_token)
    # Another process (the CLI) changes the secret: no ORM event reaches this one.
    with clean.engine.begin() as conn:
        conn.execute(update(Client).where(Client.id == client.id).values(signing_secret="n" * 43))

    clock.now += 2  # a new token, signed with the new secret, reads the client again
    assert verify(cache, clean, client.id, signed_with("n" * 43)) == ("u1", 1)
    # ... after which the old token is refused; before the TTL it still was accepted.
    with pytest.raises(DomainError):
        cache.verify(client.id, old_token)


def test_an_old_token_is_refused_once_the_ttl_is_over(clean: Database, client: Client) -> None:
    clock = Clock()
    cache = SigningSecrets(ttl=30, clock=clock)
    old_token = token_for(client)
    verify(cache, clean, client.id, old_token)
    with clean.engine.begin() as conn:
        conn.execute(update(Client).where(Client.id == client.id).values(signing_secret="n" * 43))

    assert cache.verify(client.id, old_token) is not None  # stale, within the TTL
    clock.now += 31
    assert cache.verify(client.id, old_token) is None
    with clean.session() as session, pytest.raises(DomainError):
        verify_user_token(session, client.id, old_token)


def test_a_rotation_with_grace_accepts_the_old_secret_until_it_ends(
    clean: Database, client: Client
) -> None:
    """The client's servers switch over during the grace: both secrets verify; after it
    only the new one does. The cache follows the same rule."""
    cache = SigningSecrets(ttl=30, clock=Clock())
    old_token = token_for(client)
    with clean.session() as session:
        rotated = rotate_signing_secret(session, client.id, timedelta(hours=1))
        new_token = token_for(rotated)

    for token in (old_token, new_token):
        verify(cache, clean, client.id, token)  # read into the cache, or from it
        with clean.session() as session:
            assert verify_user_token(session, client.id, token).user_id == "u1"
        assert cache.verify(client.id, token) is not None  # from the cache, both

    with clean.engine.begin() as conn:  # the grace is over
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(
            update(Client).where(Client.id == client.id).values(previous_secret_expires_at=past)
        )
    cache.forget()
    with clean.session() as session, pytest.raises(DomainError) as refused:
        verify_user_token(session, client.id, old_token)
    assert refused.value.code is ErrorCode.AUTH_TOKEN_INVALID
    with clean.session() as session:
        assert verify_user_token(session, client.id, new_token).user_id == "u1"


def test_the_tool_rotates_a_secret_with_a_grace(clean: Database, client: Client) -> None:
    import os

    from harness import cli

    out = cli("client", "rotate-secret", client.id, "--grace", "3600", env=dict(os.environ))

    assert "new signing secret:" in out and "verifies tokens until" in out
    with clean.session() as session:
        row = session.get(Client, client.id)
        assert row is not None and row.previous_signing_secret == client.signing_secret
        assert row.signing_secret in out
