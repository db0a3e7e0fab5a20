"""GraphiQL served whole by the service: the page a browser gets at /graphql loads
nothing from another origin (its Content-Security-Policy allows no other), every file
it names is served, its form fills the API's two headers, and its editor opens on the
demo's example document, valid against the schema. The files themselves are the npm
registry's, at the pinned versions and digests (`api/graphiql/assets.json`)."""

from __future__ import annotations

import importlib.util
import json
import re
import tarfile
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from urllib.parse import urljoin, urlsplit

import pytest
from graphql import OperationDefinitionNode, parse, validate
from starlette.testclient import TestClient

from api import graphiql
from api.graphql import build_schema
from settings import Settings
from tests.fixtures import Tenant, gql

ORIGIN = "http://testserver"
PAGE_URL = f"{ORIGIN}/graphql"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ROOT = Path(__file__).resolve().parents[2]


class Page(HTMLParser):
    """What a browser loads from a page (every src and href but links to follow), its
    inline code and styles, and its elements by id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []  # (tag, reference)
        self.inline: list[str] = []
        self.by_id: dict[str, tuple[str, dict[str, str | None]]] = {}
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href"):
            if attributes.get(name) and tag != "a":
                self.loads.append((tag, str(attributes[name])))
        self.inline += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]
        if "style" in attributes or tag == "style":
            self.inline.append(f"{tag} style")
        if attributes.get("id"):
            self.by_id[str(attributes["id"])] = (tag, attributes)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script body")

    def scripts(self) -> list[str]:
        return [ref for tag, ref in self.loads if tag == "script"]


def same_origin(reference: str) -> bool:
    parts = urlsplit(urljoin(PAGE_URL, reference))
    return (parts.scheme, parts.netloc) == ("http", "testserver")


def browse(api: TestClient) -> tuple[str, Page]:
    response = api.get("/graphql", headers=BROWSER)
    assert response.status_code == 200, response.text
    return response.headers["content-security-policy"], Page(response.text)


def test_a_browser_gets_graphiql_under_a_policy_that_allows_this_origin_s_scripts_only(
    api: TestClient,
) -> None:
    response = api.get("/graphql", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["content-security-policy"].split(";")
    }
    assert policy["script-src"] == ["'self'"]  # no CDN, no inline script, no eval
    assert policy["default-src"] == ["'none'"]
    assert policy["connect-src"] == ["'self'"]  # queries and subscriptions: this service
    assert policy["form-action"] == ["'none'"]  # the form never submits (nor its token)


def test_the_page_loads_only_files_of_this_origin(api: TestClient) -> None:
    _, page = browse(api)
    names = [Path(urlsplit(ref).path).name for ref in page.scripts()]
    # React before GraphiQL's bundle, which reads it from the window; the page's own last
    assert names == [
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "cv-graphiql.js",
    ]
    for tag, ref in page.loads:
        if tag == "link" and ref.startswith("data:"):
            continue  # the empty icon: no request at all
        assert same_origin(ref), f"<{tag}> loads {ref} from another origin"
    assert page.inline == []  # the policy would refuse them


def test_every_file_the_page_names_is_served_with_its_type(api: TestClient) -> None:
    _, page = browse(api)
    served = {}
    for tag, ref in page.loads:
        if ref.startswith("data:"):
            continue
        response = api.get(urljoin(PAGE_URL, ref))
        assert response.status_code == 200, ref
        kind = response.headers["content-type"].split(";")[0]
        if ref.endswith(".js"):
            assert kind in ("text/javascript", "application/javascript"), (ref, kind)
        else:
            assert (tag, ref.endswith(".css"), kind) == ("link", True, "text/css"), ref
        served[Path(ref).name] = response.text
    # What the page's script calls is in the bundles it is given
    assert "createRoot" in served["react-dom.production.min.js"]
    assert "createFetcher" in served["graphiql.min.js"]
    assert ".graphiql-container" in served["graphiql.min.css"]


def test_the_files_served_are_the_pinned_ones(api: TestClient) -> None:
    pins = json.loads((ROOT / "api/graphiql/assets.json").read_text())["packages"]
    for pin in pins:
        assert re.fullmatch(r"\d+\.\d+\.\d+", pin["version"]), pin  # an exact version
        assert pin["integrity"].startswith("sha512-"), pin
    assert graphiql.installed(), "GraphiQL's files are missing or stale: run make venv"
    installed = json.loads(api.get("/graphiql/static/installed.json").text)
    assert installed == pins


def test_the_form_fills_the_api_s_two_headers_and_a_query_with_them_works(
    api: TestClient, tenant: Tenant
) -> None:
    # Given the page's form: one input per header, named after it
    _, page = browse(api)
    form_tag, form = page.by_id["cv-credentials"]
    client_tag, client = page.by_id["cv-client-id"]
    token_tag, token = page.by_id["cv-token"]
    apply_tag, apply = page.by_id["cv-apply"]
    assert (form_tag, form["method"]) == ("form", "post")  # never a token in a URL
    assert (client_tag, client["name"]) == ("input", "x-client-id")
    assert (token_tag, token["name"], token["type"]) == ("input", "authorization", "password")
    assert (apply_tag, apply["type"]) == ("button", "submit")
    # and a script that looks up the page's elements by the ids the page has
    script = api.get(urljoin(PAGE_URL, page.scripts()[-1])).text
    looked_up = set(re.findall(r"getElementById\(\"([^\"]+)\"\)", script))
    assert {"cv-credentials", "cv-client-id", "cv-token"} <= looked_up <= set(page.by_id)
    assert '"Bearer " + saved.token' in script
    # When a user fills it with a client id and what `cv token mint` prints
    user_token = tenant.headers()["authorization"].removeprefix("Bearer ")
    headers = {str(client["name"]): tenant.client_id, str(token["name"]): f"Bearer {user_token}"}
    # Then GraphiQL's requests, carrying those headers, are answered
    body = gql(api, "{ connectedVehicleList { id status } }", headers=headers)
    assert body == {"data": {"connectedVehicleList": []}}


def test_the_editor_opens_on_the_demo_s_example_document(
    api: TestClient, settings: Settings
) -> None:
    # Given the page's script: it reads the example (beside it) and hands it to GraphiQL
    _, page = browse(api)
    script = api.get(urljoin(PAGE_URL, page.scripts()[-1])).text
    [reference] = re.findall(r"\"([^\"]*cv-example\.graphql)\"", script)
    assert "defaultQuery: example" in script
    # When the browser asks for it, as the script does (relative to the page)
    answer = api.get(urljoin(PAGE_URL, reference))
    assert answer.status_code == 200
    assert answer.text == (ROOT / "api/graphiql/static/cv-example.graphql").read_text()
    # Then it is a document the schema runs: the walk-through's operations, each valid
    document = parse(answer.text)
    assert validate(build_schema(settings)._schema, document) == []
    operations = [
        (d.operation.value, d.name.value if d.name else None)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    assert operations == [
        ("mutation", "Create"),
        ("mutation", "Authorize"),
        ("query", "Read"),
        ("query", "Data"),
        ("subscription", "Live"),
    ]
    assert answer.text.startswith("# ")  # it says, first, how to use it
    # and it creates the vehicle the README's walk-through creates, on the demo's client
    readme = (ROOT / "README.md").read_text()
    for value in (
        'vehicle_id: "tesla-model-3"',
        "provider: Smartcar",
        'redirect_uri: "http://127.0.0.1:8100/smartcar/_fake/client-return"',
        "scope: [location, charge_state]",
    ):
        assert value in answer.text
        in_readme = value in readme or value.replace('"', '\\"') in readme  # or in curl's JSON
        assert in_readme, f"the README's walk-through no longer has {value}"


def test_a_client_that_asks_for_json_still_gets_graphql_at_the_same_url(
    api: TestClient,
) -> None:
    response = api.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"accept": "application/json"}
    )
    assert response.json() == {"data": {"__typename": "AllQueries"}}


def test_without_its_files_the_page_says_how_to_install_them(tmp_path: Path) -> None:
    response = graphiql.page(tmp_path)  # an environment where they were never installed
    assert response.status_code == 503
    assert b"make venv" in response.body
    assert response.headers["content-security-policy"] == graphiql.CSP


# -- the installer: npm's tarball, checked against the pin, installed whole or not at all


def installer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "graphiql_assets", ROOT / "scripts/graphiql_assets.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `npm` on the PATH whose `pack` hands over the tarball at tmp/pkg.tgz, as the
    registry's would be: no network."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "bundle.js").write_text("window.Bundle = 1;\n")
    with tarfile.open(tmp_path / "pkg.tgz", "w:gz") as tar:
        tar.add(source / "bundle.js", arcname="package/bundle.js")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(
        "#!/bin/sh\n"
        "# npm pack SPEC --pack-destination DIR ...\n"
        f'cp {tmp_path / "pkg.tgz"} "$4/pkg-1.0.0.tgz"\n'
        'echo \'[{"name": "pkg", "version": "1.0.0", "filename": "pkg-1.0.0.tgz"}]\'\n'
    )
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return tmp_path / "pkg.tgz"


def test_a_tarball_is_installed_only_when_its_digest_is_the_pin(
    fake_npm: Path, tmp_path: Path
) -> None:
    assets = installer()
    dest = tmp_path / "share" / "cv-graphiql"
    pin = {
        "name": "pkg",
        "version": "1.0.0",
        "integrity": assets.integrity_of(fake_npm.read_bytes()),
        "files": {"package/bundle.js": "bundle.js"},
    }
    # Given the files installed at the pin
    assert assets.install(dest, [pin]) is True
    assert (dest / "bundle.js").read_text() == "window.Bundle = 1;\n"
    assert assets.install(dest, [pin]) is False  # already: nothing fetched again
    # When the registry hands over other bytes than the pin's (or the pin changes)
    other = {**pin, "version": "1.0.1", "integrity": "sha512-" + "A" * 86 + "=="}
    with pytest.raises(assets.AssetError, match="digest"):
        assets.install(dest, [other])
    # Then nothing of it is installed: what was there stays, whole
    assert json.loads((dest / "installed.json").read_text()) == [pin]
    assert sorted(p.name for p in dest.iterdir()) == ["bundle.js", "installed.json"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cv-graphiql"]
