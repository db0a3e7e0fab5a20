"""`schema.graphql`, committed at the repository's root, is the schema the code builds:
this test is CI's check that the two never drift."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from api.graphql.sdl import REGENERATE, SDL_FILE, main, sdl
from settings import Settings


def test_the_committed_schema_is_the_code_s(settings: Settings) -> None:
    committed = SDL_FILE.read_text() if SDL_FILE.exists() else ""
    code = sdl(settings)
    if committed != code:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                code.splitlines(keepends=True),
                "schema.graphql (committed)",
                "the code's schema",
                n=1,
            )
        )
        pytest.fail(
            f"schema.graphql is not the code's schema: run {REGENERATE}, "
            f"then commit it.\n{diff[:4000]}",
            pytrace=False,
        )


def test_the_command_writes_the_file_and_its_check_finds_a_drift(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the file written by the command
    out = tmp_path / "schema.graphql"
    assert main(["--output", str(out)]) == 0
    assert out.read_text() == sdl(settings)
    assert main(["--check", "--output", str(out)]) == 0
    # When the code and the file part ways
    out.write_text(out.read_text().replace("type Vehicle {", "type Car {"))
    # Then the check fails, and says how to mend it
    assert main(["--check", "--output", str(out)]) == 1
    assert REGENERATE in capsys.readouterr().err
