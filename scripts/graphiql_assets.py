"""Installs GraphiQL's browser files into this environment, from the npm registry.

`api/graphiql/assets.json` pins each package: its exact version, the sha512 of its
tarball (npm's `integrity`) and the few files kept from it. `npm pack` (npm's own
client, with the machine's npm settings) fetches each tarball; a tarball whose sha512 is
not the pin is refused and nothing is installed. The kept files go into
`<environment>/share/cv-graphiql/`, with `installed.json` (the pins) written last as
the mark of a complete install. The web serves that folder at `/graphiql/static/`:
nothing is fetched at run time.

`make venv` (and so `make run` and `make test`) runs it when the pins change:

    .venv/bin/python scripts/graphiql_assets.py [DEST]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DEST", "PINS", "AssetError", "check_integrity", "install"]

PINS = Path(__file__).resolve().parent.parent / "api" / "graphiql" / "assets.json"
DEFAULT_DEST = Path(sys.prefix) / "share" / "cv-graphiql"
STAMP = "installed.json"


class AssetError(Exception):
    """The files could not be installed as pinned (no npm, a failed fetch, a digest that
    is not the pin, a file missing from a tarball)."""


def integrity_of(data: bytes) -> str:
    """npm's form of a digest: ``sha512-`` and the base64 of the SHA-512."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def check_integrity(spec: str, data: bytes, pinned: str) -> None:
    actual = integrity_of(data)
    if not hmac.compare_digest(actual, pinned):
        raise AssetError(f"{spec}: the tarball's digest is {actual}, the pin is {pinned}")


def load_pins(path: Path = PINS) -> list[dict[str, Any]]:
    packages: list[dict[str, Any]] = json.loads(path.read_text())["packages"]
    return packages


def is_installed(dest: Path, pins: list[dict[str, Any]]) -> bool:
    try:
        return bool(json.loads((dest / STAMP).read_text()) == pins)
    except (OSError, ValueError):
        return False


def npm_pack(specs: list[str], into: Path) -> dict[str, Path]:
    """The tarballs of `specs` (``name@version``), fetched by npm into `into`, by name."""
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError(
            "npm is needed to fetch GraphiQL's files from the npm registry "
            "(Debian: apt-get install npm)"
        )
    argv = [npm, "pack", *specs, "--pack-destination", str(into), "--json"]
    argv += ["--ignore-scripts", "--loglevel=error"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 (pinned specs)
    if done.returncode != 0:
        raise AssetError(f"npm pack {' '.join(specs)} failed:\n{done.stderr.strip()}")
    return {packed["name"]: into / packed["filename"] for packed in json.loads(done.stdout)}


def extract(spec: str, tarball: bytes, files: dict[str, str], into: Path) -> None:
    """Copies the named members of `tarball` into `into` under their served names."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member, served in files.items():
            if Path(served).name != served or served in ("", ".", "..", STAMP):
                raise AssetError(f"{spec}: {served!r} is not a plain file name")
            try:
                source = tar.extractfile(member)
            except KeyError:
                source = None
            if source is None:
                raise AssetError(f"{spec}: the tarball has no file {member}")
            (into / served).write_bytes(source.read())


def install(dest: Path = DEFAULT_DEST, pins: list[dict[str, Any]] | None = None) -> bool:
    """Installs the pinned files into `dest`, whole or not at all; False when they
    already are."""
    pins = load_pins() if pins is None else pins
    if is_installed(dest, pins):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as work:
        tarballs, staged = Path(work, "tarballs"), Path(work, "files")
        tarballs.mkdir()
        staged.mkdir()
        specs = {pin["name"]: f"{pin['name']}@{pin['version']}" for pin in pins}
        packed = npm_pack(list(specs.values()), tarballs)
        for pin in pins:
            spec = specs[pin["name"]]
            if pin["name"] not in packed:
                raise AssetError(f"{spec}: npm pack returned no tarball")
            data = packed[pin["name"]].read_bytes()
            check_integrity(spec, data, pin["integrity"])
            extract(spec, data, pin["files"], staged)
        (staged / STAMP).write_text(json.dumps(pins, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", nargs="?", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    try:
        changed = install(args.dest)
    except AssetError as exc:
        print(f"GraphiQL's files: {exc}", file=sys.stderr)
        return 1
    versions = ", ".join(f"{p['name']} {p['version']}" for p in load_pins())
    print(f"GraphiQL's files {'installed' if changed else 'up to date'} in {args.dest}: {versions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
