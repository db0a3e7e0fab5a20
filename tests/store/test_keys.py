"""The secret key fails loudly (SPEC §6): readiness decrypts a canary; web, worker and
beat refuse to start with a missing or wrong key and say why; `cv keys rotate`
re-encrypts every row under a new key, batched and resumable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from starlette.testclient import TestClient

from harness.procs import BIN, ROOT
from settings import Settings
from store.db import Database
from tests.helpers.run import SECRET_KEY, migrated_database
from workflows.clients import create_client


def run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def sqlite_with_secrets(tmp_path: Path) -> str:
    """A database holding secrets under this run's key: a client and its provider app."""
    url = f"sqlite:///{tmp_path / 'keys.sqlite3'}"
    db = migrated_database(url)
    with db.session() as session:
        for i in range(7):
            create_client(session, f"Client {i}")
    db.engine.dispose()
    return url


def test_a_rotation_end_to_end(sqlite_with_secrets: str) -> None:
    new = Fernet.generate_key().decode()
    env = {**os.environ, "CV_DATABASE_URL": sqlite_with_secrets}
    cv = str(BIN / "cv")
    assert run(cv, "keys", "check", env={**env, "CV_SECRET_KEY": new}).returncode == 2

    rotated = run(
        cv, "keys", "rotate", "--batch", "3", env={**env, "CV_SECRET_KEY": f"{new},{SECRET_KEY}"}
    )

    assert rotated.returncode == 0, rotated.stderr
    assert "clients: 3 rows" in rotated.stdout and "clients: 7 rows" in rotated.stdout
    checked = run(cv, "keys", "check", env={**env, "CV_SECRET_KEY": new})  # the old key gone
    assert checked.returncode == 0, checked.stderr
    again = run(cv, "keys", "rotate", env={**env, "CV_SECRET_KEY": new})  # resumable: harmless
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("process", ["worker", "beat"])
@pytest.mark.parametrize("key", ["missing", "wrong"])
def test_worker_and_beat_refuse_to_start_without_the_key(
    sqlite_with_secrets: str, tmp_path: Path, process: str, key: str
) -> None:
    secret = "" if key == "missing" else Fernet.generate_key().decode()
    env = {**os.environ, "CV_DATABASE_URL": sqlite_with_secrets, "CV_SECRET_KEY": secret}
    argv = [str(BIN / "celery"), "-A", "workers.app", process]
    argv += ["-P", "solo"] if process == "worker" else ["-s", str(tmp_path / "schedule")]

    result = run(*argv, env=env)

    assert result.returncode == 78
    reason = "is not set" if key == "missing" else "does not decrypt what is stored"
    assert f"refusing to start: CV_SECRET_KEY {reason}" in result.stderr + result.stdout


def test_the_web_refuses_to_start_with_a_wrong_key(tenant: object, settings: Settings) -> None:
    from pydantic import SecretStr

    from api.app import create_app
    from store.crypto import SecretKeyError, use_key

    wrong = settings.model_copy(update={"secret_key": SecretStr(Fernet.generate_key().decode())})
    try:
        with pytest.raises(SecretKeyError, match="does not decrypt what is stored"):
            create_app(wrong)
    finally:
        use_key(SECRET_KEY)  # the process's key, for the tests after this one


def test_readiness_decrypts_a_canary(api: TestClient, clean: Database) -> None:
    assert api.get("/readyz").json()["secret_key"] is True
    foreign = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    with clean.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO clients (id, name, signing_secret, created_at)"
                " VALUES ('c-foreign', 'F', :s, now())"
            ),
            {"s": foreign},
        )

    answer = api.get("/readyz")

    assert answer.status_code == 503
    assert answer.json()["secret_key"] is False
