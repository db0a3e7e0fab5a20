"""The schema as SDL, committed as ``schema.graphql`` at the repository's root so that
clients (and reviewers) read the API's contract without running it.

    python -m api.graphql.sdl           # (re)writes schema.graphql from the code
    python -m api.graphql.sdl --check   # exits 1 when schema.graphql is not the code's

``make schema`` runs the first; ``tests/api/test_schema_file.py`` is the second in CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from api.graphql.schema import build_schema
from settings import Settings, get_settings

__all__ = ["REGENERATE", "SDL_FILE", "main", "sdl"]

SDL_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
REGENERATE = "make schema (or: .venv/bin/python -m api.graphql.sdl)"


def sdl(settings: Settings) -> str:
    """The schema's SDL as the code builds it (the settings change limits, not types)."""
    return str(build_schema(settings)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api.graphql.sdl", description="Write the schema's SDL to a file."
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    parser.add_argument("--output", type=Path, default=SDL_FILE, help=f"default: {SDL_FILE}")
    args = parser.parse_args(argv)
    text = sdl(get_settings())
    current = args.output.read_text() if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is not the code's schema: run {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{args.output} is the code's schema")
        return 0
    if current != text:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} is already the code's schema")
    return 0


if __name__ == "__main__":
    sys.exit(main())
