"""The "Synthetic data gates" plugin in a real `airflow api-server` (SimpleAuthManager, SQLite): every
route refuses requests without a valid Airflow token, answers with the store's gate history with
one, and a real headless Chromium shows a known run's decision and score on the page.

The store holds three runs made by the real steps (tests/gate_fixtures.py); the domains folder
also holds a broken YAML, which the page must note rather than crash on. Screenshots are kept under
test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import jwt
import pytest

from tests.gate_fixtures import DOMAIN, GatedRun, make_gate_runs, write_domain_yaml
from tests.integration.airflow_server import REPO, AirflowHome, free_port, request_token
from tests.integration.chromium import Chromium

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts"
PREFIX = "/synth-gates"


@dataclass
class GateServer:
    base: str
    home: AirflowHome
    runs: dict[str, GatedRun]
    tokens: dict[str, str]

    def get(self, path: str, token: str | None = None, cookie: str | None = None,
            accept: str = "application/json") -> tuple[int, dict, bytes]:
        """(status, headers, body) without following redirects."""
        headers = {"Accept": accept}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie:
            headers["Cookie"] = f"_token={cookie}"

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(urllib.request.Request(self.base + path, headers=headers), timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    domains = tmp_path_factory.mktemp("domains")
    runs = make_gate_runs(write_domain_yaml(domains))
    (domains / "broken.yaml").write_text("name: Not A Valid Name\n")
    home = AirflowHome(tmp_path_factory.mktemp("airflow"), config={"SYNTH_DOMAINS_DIR": str(domains)})
    try:
        home.cli("db", "migrate")
        base = home.start_api_server(free_port())
        tokens = {user: request_token(base, user, password) for user, password in home.passwords.items()}
        yield GateServer(base, home, runs, tokens)
    finally:
        home.stop_all()


def _run_path(run: GatedRun, leaf: str = "", api: bool = False) -> str:
    path = f"{PREFIX}{'/api' if api else ''}/domains/{DOMAIN}/runs/{quote(run.run_id, safe='')}"
    return f"{path}/{leaf}" if leaf else path


# Every route of the plugin's app, with a concrete URL; a test checks the app has no others.
ROUTES = {
    "/": "/",
    "/api/history": "/api/history",
    "/domains/{domain}/runs/{run_id}": "/domains/{domain}/runs/{reviewed}",
    "/domains/{domain}/runs/{run_id}/gate_report.html": "/domains/{domain}/runs/{reviewed}/gate_report.html",
    "/domains/{domain}/runs/{run_id}/manifest.json": "/domains/{domain}/runs/{reviewed}/manifest.json",
    "/api/domains/{domain}/runs/{run_id}": "/api/domains/{domain}/runs/{reviewed}",
}


def _url(server: GateServer, template: str) -> str:
    return PREFIX + ROUTES[template].format(domain=DOMAIN, reviewed=quote(server.runs["reviewed"].run_id, safe=""))


def test_the_route_list_covers_every_route_of_the_app(server: GateServer):
    """So a route added later cannot escape the authentication test below."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from synth_gate_review import app; "
            "print(json.dumps([route.path for route in app.routes]))")
    done = subprocess.run([sys.executable, "-c", code, str(REPO / "plugins")], env=server.home.env(),
                          capture_output=True, text=True, timeout=60, check=True)
    assert set(json.loads(done.stdout.splitlines()[-1])) == set(ROUTES)


def _forged_and_expired(server: GateServer) -> dict[str, str]:
    claims = jwt.decode(server.tokens["admin"], options={"verify_signature": False})
    secret = server.home.config["AIRFLOW__API_AUTH__JWT_SECRET"]
    algorithm = jwt.get_unverified_header(server.tokens["admin"])["alg"]
    now = int(time.time())
    return {"forged": jwt.encode(claims, "not-the-secret" * 5, algorithm=algorithm),
            "expired": jwt.encode({**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}, secret,
                                  algorithm=algorithm)}


@pytest.mark.parametrize("template", sorted(ROUTES))
def test_every_route_refuses_requests_without_a_valid_token(server: GateServer, template: str):
    url = _url(server, template)
    status, _, body = server.get(url)
    assert status == 401 and json.loads(body) == {"detail": "Not authenticated"}
    status, headers, body = server.get(url, accept="text/html,application/xhtml+xml")
    assert status == 303 and headers["location"].startswith("/auth/login?next=")
    assert b"alice" not in body and b"gatereview" not in body
    bad = _forged_and_expired(server)
    assert server.get(url, token=bad["forged"])[0] == 403
    assert server.get(url, cookie=bad["forged"])[0] == 403
    assert server.get(url, token=bad["expired"])[0] == 401
    # the same request with a valid token, as a header or as the UI's cookie, is served
    assert server.get(url, token=server.tokens["admin"])[0] == 200
    assert server.get(url, cookie=server.tokens["viewer"], accept="text/html")[0] == 200


def test_history_api_reports_each_run_from_the_store(server: GateServer):
    status, _, body = server.get(f"{PREFIX}/api/history", token=server.tokens["viewer"])
    assert status == 200
    data = json.loads(body)
    assert [b["path"].rsplit("/", 1)[-1] for b in data["broken_domains"]] == ["broken.yaml"]
    assert "source.uri=''" in data["broken_domains"][0]["error"]
    (domain,) = data["domains"]
    runs = {r["run_id"]: r for r in domain["runs"]}
    assert set(runs) == {r.run_id for r in server.runs.values()}
    for name, gated in server.runs.items():
        row, report = runs[gated.run_id], gated.report
        assert row["decision"] == report["decision"]
        assert row["rows_kept"] == report["counts"]["kept"] and row["rows_dropped"] == report["counts"]["dropped"]
        assert row["leakage_rate"] == report["rates"]["leakage_rate"]
        assert row["publication"]["status"] == ("quarantined" if name == "leaky" else "published")
    reviewed = runs[server.runs["reviewed"].run_id]
    assert reviewed["decision"] == "review" and reviewed["publication"]["approved_by"] == "alice"
    assert reviewed["mauve"] == server.runs["reviewed"].report["mauve"]["synthetic"]["mean"]
    assert reviewed["validation"]["synthetic"]["success"] is True


def test_detail_manifest_and_report_endpoints(server: GateServer):
    reviewed, token = server.runs["reviewed"], server.tokens["admin"]
    status, _, body = server.get(_run_path(reviewed, api=True), token=token)
    detail = json.loads(body)
    assert status == 200 and detail["report"]["samples"] == reviewed.report["samples"]
    assert detail["manifest"]["approved_by"] == "alice"
    status, _, body = server.get(_run_path(reviewed, "manifest.json"), token=token)
    assert status == 200 and json.loads(body)["run_id"] == reviewed.run_id
    status, headers, body = server.get(_run_path(reviewed, "gate_report.html"), token=token)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"].startswith("sandbox") and b"<html" in body.lower()
    assert server.get(f"{PREFIX}/domains/{DOMAIN}/runs/no_such_run", token=token)[0] == 404
    assert server.get(f"{PREFIX}/domains/nosuchdomain/runs/x", token=token)[0] == 404


def test_plugin_is_registered_with_a_menu_entry(server: GateServer):
    status, _, body = server.get("/api/v2/plugins", token=server.tokens["admin"])
    (plugin,) = [p for p in json.loads(body)["plugins"] if p["name"] == "synth_gate_review"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == PREFIX
    assert plugin["external_views"][0]["href"] == f"{PREFIX}/"


def test_browser_shows_a_known_runs_decision_and_score(server: GateServer, tmp_path: Path):
    reviewed = server.runs["reviewed"]
    score = f"{reviewed.report['mauve']['synthetic']['mean']:.3f}"
    with Chromium(tmp_path) as browser:
        browser.open(f"{server.base}{PREFIX}/")  # no session yet: Airflow's login page
        assert "/auth/login" in browser.evaluate("location.pathname")
        assert "alice" not in browser.evaluate("document.body.innerText")

        browser.set_cookie(server.base, "_token", server.tokens["admin"])
        browser.open(f"{server.base}{PREFIX}/")
        row = browser.evaluate(f"document.querySelector('tr[data-run-id={json.dumps(reviewed.run_id)}]').innerText")
        assert "review" in row and score in row and "alice" in row
        assert browser.evaluate("document.querySelectorAll('svg.trend circle').length") == 2  # two scored runs
        assert "broken.yaml" in browser.evaluate("document.querySelector('.broken-domain').innerText")
        browser.screenshot(ARTIFACTS / "gate_review_overview.png")

        browser.open(f"{server.base}{_run_path(reviewed)}")
        text = browser.evaluate("document.body.innerText")
        assert reviewed.run_id in text and score in text and "alice" in text
        assert reviewed.report["samples"]["kept"][0].splitlines()[0] in text
        assert browser.evaluate("document.querySelector('a[target=_top]').getAttribute('href')") == \
            f"/dags/synth__{DOMAIN}/runs/{quote(reviewed.run_id, safe='')}"
        browser.screenshot(ARTIFACTS / "gate_review_detail.png")

        # the menu entry frames the page inside Airflow's own UI
        browser.open(f"{server.base}/plugin/synth-gates")
        src = browser.wait_for("document.querySelector('iframe') && document.querySelector('iframe').src")
        assert src.endswith(f"{PREFIX}/")
        time.sleep(1.0)
        browser.screenshot(ARTIFACTS / "gate_review_in_airflow_ui.png")
