"""The documentation keeps what it says true: every setting is documented, and neither the
README nor a page of docs/ names a Celery task, a setting or a file of the repository that
does not exist; the README stays a front door (at most 200 lines).

A name in the docs that the code dropped or renamed is a drift a reader acts on (issue 18:
a relay "countdown", a task "shown" in Flower); these tests fail on the next run instead.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from pydantic import AliasChoices

from settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

# `CV_*` variables the docs may name that are not settings, each with what reads it and
# the text it is read by: a variable no longer read anywhere in the code, the Procfile or
# the scripts fails `test_the_other_variables_are_still_read`, so this list cannot drift.
NOT_SETTINGS: dict[str, tuple[str, str]] = {
    # name: (the text that reads it, who reads it and why it is not a setting)
    "CV_OPS_CONCURRENCY": ("CV_OPS_CONCURRENCY", "the Procfile's `ops` line: its pool size"),
    "CV_BEAT_SCHEDULE": ("CV_BEAT_SCHEDULE", "the Procfile's `beat` line: its schedule file"),
    "CV_FAKES_PORT": ("CV_FAKES_PORT", "scripts/run: where `make run` serves the fakes"),
    "CV_OAUTH_CLIENT_SECRET": (
        "CV_OAUTH_CLIENT_SECRET",
        "the `cv` tool: an option of `client set-provider`, kept off the command line",
    ),
    "CV_PROVIDER_WEBHOOK_SECRET": (
        "CV_PROVIDER_WEBHOOK_SECRET",
        "the `cv` tool: an option of `client set-provider`, kept off the command line",
    ),
    "CV_TEST_POSTGRES_URL": ("CV_TEST_POSTGRES_URL", "the tests' and the bench's PostgreSQL"),
    "CV_TEST_REDIS_URL": ("CV_TEST_REDIS_URL", "the tests' Redis"),
    "CV_TEST_REDIS_DB": ("CV_TEST_REDIS_DB", "the tests' Redis db (a run's own)"),
    "CV_TEST_CHROMIUM": ("CV_TEST_CHROMIUM", "scripts/test and the browser tests' Chromium"),
    "CV_PYTHONS": ("CV_PYTHONS", "scripts/test-pythons: which Pythons to test on"),
    # scripts/test-pythons reads CV_PYTHON_<the version, dots as underscores>
    "CV_PYTHON_3_11": ("CV_PYTHON_", "scripts/test-pythons: where Python 3.11 is"),
    "CV_PYTHON_3_12": ("CV_PYTHON_", "scripts/test-pythons: where Python 3.12 is"),
    "CV_PYTHON_3_13": ("CV_PYTHON_", "scripts/test-pythons: where Python 3.13 is"),
}

# The repository's rooms and top-level files: a path the docs name is checked when it
# starts with one of them (today's, plus any top-level entry that exists, so that a room
# removed tomorrow is still recognized, and a new one is checked from the start).
ROOMS = {
    ".ci",
    "api",
    "bench",
    "docs",
    "harness",
    "ops",
    "providers",
    "scripts",
    "store",
    "tests",
    "workers",
    "workflows",
}
TOP_FILES = {
    "Makefile",
    "Procfile",
    "README.md",
    "celeryconfig.py",
    "logconfig.py",
    "metrics.py",
    "pyproject.toml",
    "schema.graphql",
    "settings.py",
    "telemetry.py",
    "uv.lock",
}
# A dotted name ending so is a file's (`api.md`, `settings.py`), not a module's.
FILE_SUFFIXES = {"md", "py", "json", "toml", "lock", "graphql", "txt", "html", "css", "js"}
# What a checkout or a run makes, never in the repository (`var/`, `.venv/`, `.env`).
NOT_ROOMS = {"var", "node_modules", "__pycache__"}

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s)`'\"<>]+")
_SETTING = re.compile(r"(?<![A-Za-z0-9_])CV_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_])")
_UPPER = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]*(?![A-Za-z0-9_])")
# `cv.relay_outbox`, not `var/cv.sqlite3` nor `cv.relay_outbox.py`; a sentence's full stop
# may follow.
_TASK = re.compile(r"(?<![\w./-])cv\.[a-z_][a-z0-9_]*(?![\w-]|\.\w)")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*```")


def _rooms() -> set[str]:
    found = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_ROOMS
    }
    return ROOMS | found


def _top_files() -> set[str]:
    found = {p.name for p in ROOT.iterdir() if p.is_file() and not p.name.startswith(".")}
    return TOP_FILES | found


def text_of(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def prose(page: Path) -> Iterator[tuple[int, str]]:
    """The page's lines outside fenced code blocks, numbered from 1."""
    fenced = False
    for number, line in enumerate(text_of(page).splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def names_in(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    """Each match of `pattern` in the pages (URLs left out), with where it was seen."""
    seen: dict[str, list[str]] = {}
    for page in PAGES:
        for number, line in enumerate(text_of(page).splitlines(), 1):
            for match in pattern.finditer(_URL.sub(" ", line)):
                seen.setdefault(match.group(0), []).append(f"{page.relative_to(ROOT)}:{number}")
    return seen


def env_names(name: str) -> list[str]:
    """The environment variables a field of Settings is read from (pydantic-settings:
    the prefix and the field's name, upper-cased, unless the field names its own)."""
    field = Settings.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return [f"{prefix}{name}".upper()]


@cache
def setting_names() -> frozenset[str]:
    return frozenset(env for name in Settings.model_fields for env in env_names(name))


def test_every_setting_is_documented() -> None:
    documented = set(names_in(_UPPER))
    missing = sorted(
        env for name in Settings.model_fields for env in env_names(name) if env not in documented
    )
    assert not missing, f"settings.py's fields not named in README.md or docs/: {missing}"


def test_every_cv_variable_named_is_a_setting_or_listed() -> None:
    unknown = {
        name: where
        for name, where in names_in(_SETTING).items()
        if name not in setting_names() and name not in NOT_SETTINGS
    }
    assert not unknown, (
        f"the docs name CV_* variables that are no setting of settings.py: {unknown} "
        "(a variable read elsewhere goes into NOT_SETTINGS, with what reads it)"
    )


@cache
def code_text() -> str:
    """Everything that may read an environment variable: the Python of every room, the
    Procfile, the Makefile and the scripts (this file and the docs left out)."""
    files = [ROOT / "Procfile", ROOT / "Makefile", *(ROOT / "scripts").iterdir()]
    files += [
        p
        for p in ROOT.rglob("*.py")
        if p != Path(__file__).resolve()
        and not any(part.startswith(".") or part in NOT_ROOMS for part in p.relative_to(ROOT).parts)
    ]
    return "\n".join(p.read_text(encoding="utf-8") for p in files if p.is_file())


@pytest.mark.parametrize("name", sorted(NOT_SETTINGS))
def test_the_other_variables_are_still_read(name: str) -> None:
    needle, who = NOT_SETTINGS[name]
    assert name not in setting_names(), f"{name} is a setting now: drop it from NOT_SETTINGS"
    read = needle in code_text()
    assert read, f"nothing reads {name} any more ({who}): drop it from the docs"


def test_every_task_named_is_registered() -> None:
    from celeryconfig import QUEUES
    from workers.app import app

    app.loader.import_default_modules()
    known = set(app.tasks) | set(QUEUES)
    unknown = {name: where for name, where in names_in(_TASK).items() if name not in known}
    assert not unknown, f"the docs name Celery tasks (or queues) the app does not have: {unknown}"


def _path_pattern() -> re.Pattern[str]:
    rooms = "|".join(re.escape(r) for r in sorted(_rooms(), key=len, reverse=True))
    files = "|".join(re.escape(f) for f in sorted(_top_files(), key=len, reverse=True))
    # a room and what follows it (`workers/enqueue.py`, `api/graphql/`), or a top-level
    # file; never inside a longer path or a URL's (`/ops/…`, `var/cv.sqlite3`)
    return re.compile(
        rf"(?<![\w./~$@-])(?:(?:{rooms})/[\w./-]*|(?:{files})(?![\w-]))",
    )


def _module_pattern() -> re.Pattern[str]:
    packages = sorted(r for r in _rooms() if (ROOT / r / "__init__.py").exists())
    rooms = "|".join(re.escape(r) for r in packages)
    # `python -m workers.alive`, `workflows.sweep.sweep`, `store.db.DATABASE_AWAY`
    return re.compile(rf"(?<![\w./-])(?:{rooms})(?:\.[A-Za-z_]\w*)+")


def _bound(node: ast.stmt) -> list[str]:
    """The names a top-level statement binds."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [a.asname or a.name.split(".")[0] for a in node.names]
    return []


def _defines(module: Path, name: str) -> bool:
    """Whether `module` (a .py file) binds `name` at its top level."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return any(name in _bound(node) for node in tree.body)


def _module_exists(dotted: str) -> bool:
    """`a.b.c`: the longest prefix that is a module or package of the repository, then
    (when something is left) a name that module binds at its top level."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        module = base.with_suffix(".py")
        package = base / "__init__.py"
        found = module if module.is_file() else package if package.is_file() else None
        if found is None:
            continue
        rest = parts[cut:]
        return not rest or _defines(found, rest[0])
    return False


def test_every_path_named_exists() -> None:
    pattern = _path_pattern()
    missing: dict[str, list[str]] = {}
    for path, where in names_in(pattern).items():
        relative = path.rstrip(".").rstrip("/")
        if relative and not (ROOT / relative).exists():
            missing[path] = where
    modules = _module_pattern()
    for dotted, where in names_in(modules).items():
        if dotted.rsplit(".", 1)[-1] in FILE_SUFFIXES:  # `api.md`: a page, not a module
            continue
        if not _module_exists(dotted.rstrip(".")):
            missing[dotted] = where
    assert not missing, f"the docs name files or modules the repository does not have: {missing}"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    for _, line in prose(page):
        if line.startswith("#"):
            slug = _slug(line.lstrip("#"))
            n, candidate = 0, slug
            while candidate in anchors:  # GitHub numbers a repeated heading
                n += 1
                candidate = f"{slug}-{n}"
            anchors.add(candidate)
    return anchors


def test_every_link_between_pages_lands() -> None:
    broken = []
    for page in PAGES:
        for number, line in prose(page):
            for target in _LINK.findall(line):
                if _URL.match(target) or target.startswith("mailto:"):
                    continue
                file, _, anchor = target.partition("#")
                goal = (page.parent / file).resolve() if file else page
                if not goal.exists():
                    broken.append(f"{page.relative_to(ROOT)}:{number}: {target} (no such file)")
                elif anchor and goal.suffix == ".md" and anchor not in _anchors(goal):
                    broken.append(f"{page.relative_to(ROOT)}:{number}: {target} (no such heading)")
    assert not broken, "links that land nowhere:\n" + "\n".join(broken)


def test_the_readme_is_a_front_door() -> None:
    lines = len(text_of(README).splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move the detail to docs/"
    )
