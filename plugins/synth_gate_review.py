"""Airflow plugin: the "Synthetic data gates" review page, served by the api-server at /synth-gates/.

A FastAPI app mounted by Airflow (`fastapi_apps`) plus a menu entry that frames it in the UI
(`external_views`). Every route sits behind Airflow's own authentication: the app-level dependency
`get_user` accepts the auth manager's JWT (the UI's `_token` cookie or an `Authorization: Bearer`
header) and answers 401 without one, 403 for a forged one; browsers asking for HTML are sent to the
login page instead of a bare 401. A domain's runs are shown only to users who may read the runs of
its DAG (`synth__<domain>`). There are no OpenAPI/docs routes. Data comes from
`synth_core.gate_history`; the HTML from `synth_gate_review_pages`.
"""

from __future__ import annotations

from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, get_user, requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from synth_gate_review_pages import Links, RunFilter, detail_page, overview_page

from synth_core import gate_history
from synth_core.layout import GATE_PAGES_URL, GATE_REPORT_HTML, MANIFEST, dag_id_for

URL_PREFIX = GATE_PAGES_URL
# the gate report is our own script-free HTML; serve it sandboxed all the same
REPORT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"

app = FastAPI(title="Synthetic data gates", docs_url=None, redoc_url=None, openapi_url=None,
              dependencies=[Depends(get_user)])


@app.exception_handler(StarletteHTTPException)
async def _login_redirect(request: Request, exc: StarletteHTTPException) -> Response:
    """A browser without a (valid, unexpired) session goes to the login page, then back here."""
    if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    return await http_exception_handler(request, exc)


def _links(request: Request) -> Links:
    root = request.scope.get("root_path", "").rstrip("/")
    return Links(plugin=root, airflow=root.removesuffix(URL_PREFIX))


def _may_read_runs(request: Request, user: Any, domain: str) -> bool:
    try:
        requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag_id_for(domain))(request, user)
    except HTTPException as exc:
        if exc.status_code == 403:
            return False
        raise
    return True


def readable_domain(domain: str, request: Request, user: GetUserDep):
    """The domain's config, if the user may read its DAG's runs (403) and it is configured (404)."""
    if not _may_read_runs(request, user, domain):
        raise HTTPException(403, "Forbidden")
    configs, _ = gate_history.load_domains()
    for config in configs:
        if config.name == domain:
            return config
    raise HTTPException(404, f"no domain {domain!r} configured")


DomainDep = Annotated[Any, Depends(readable_domain)]
Limit = Annotated[int, Query(ge=1, le=500, description="newest runs per domain")]


def _histories(request: Request, user: Any, limit: int) -> tuple[list[gate_history.DomainHistory], list]:
    configs, broken = gate_history.load_domains()
    return ([gate_history.domain_history(c, limit) for c in configs if _may_read_runs(request, user, c.name)],
            broken)


def _detail(config: Any, run_id: str) -> gate_history.RunDetail:
    try:
        return gate_history.run_detail(config, run_id)
    except (FileNotFoundError, ValueError):
        raise HTTPException(404, f"no gate report for {config.name} run {run_id!r}") from None


@app.get("/", response_class=HTMLResponse)
def overview(request: Request, user: GetUserDep, limit: Limit = 50, domain: str = "", decision: str = "",
             end_state: str = "") -> str:
    """Every readable domain's gate history; `domain`, `decision` and `end_state` narrow the tables (empty: all)."""
    histories, broken = _histories(request, user, limit)
    return overview_page(histories, broken, _links(request),
                         RunFilter(domain or None, decision or None, end_state or None))


@app.get("/domains/{domain}/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, config: DomainDep, run_id: str) -> str:
    return detail_page(_detail(config, run_id), _links(request))


@app.get(f"/domains/{{domain}}/runs/{{run_id}}/{GATE_REPORT_HTML}")
def gate_report(config: DomainDep, run_id: str) -> Response:
    try:
        html = gate_history.gate_report_html(config, run_id)
    except (FileNotFoundError, ValueError):
        raise HTTPException(404, f"no HTML gate report for {config.name} run {run_id!r}") from None
    return Response(html, media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})


@app.get(f"/domains/{{domain}}/runs/{{run_id}}/{MANIFEST}")
def published_manifest(config: DomainDep, run_id: str) -> JSONResponse:
    detail = _detail(config, run_id)
    if detail.manifest is None:
        raise HTTPException(404, f"{config.name} run {run_id!r} is neither published nor quarantined")
    return JSONResponse(detail.manifest)


@app.get("/api/history")
def history(request: Request, user: GetUserDep, limit: Limit = 50) -> dict[str, Any]:
    histories, broken = _histories(request, user, limit)
    return {"domains": [h.to_dict() for h in histories], "broken_domains": [vars(b) for b in broken]}


@app.get("/api/domains/{domain}/runs/{run_id}")
def run_api(config: DomainDep, run_id: str) -> dict[str, Any]:
    detail = _detail(config, run_id)
    return {"run": detail.run.to_dict(), "report": detail.report, "manifest": detail.manifest,
            "error": detail.error}


class SynthGateReviewPlugin(AirflowPlugin):
    name = "synth_gate_review"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Synthetic data gates"}]
    external_views = [{"name": "Synthetic data gates", "href": f"{URL_PREFIX}/", "url_route": "synth-gates",
                       "destination": "nav", "category": "browse"}]
