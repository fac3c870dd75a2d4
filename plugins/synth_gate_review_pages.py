"""HTML for the "Synthetic data gates" review page: the per-domain history with a trend chart, and one
run's detail. Pure functions of `synth_core.gate_history` objects; every value goes through
`html.escape` (run ids, reasons and sample rows are data, not markup). No scripts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from synth_core.gate_history import FAILED_VALIDATION, BrokenDomain, DomainHistory, GateRun, RunDetail
from synth_core.html_table import html_table
from synth_core.layout import (
    GATE_REPORT_HTML,
    MANIFEST,
    airflow_dag_path,
    airflow_run_path,
    gate_page_run_path,
    required_action_path,
)

COLOURS = {"pass": "#1a7f37", "review": "#9a6700", "fail": "#cf222e"}
STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d0d7de;padding:3px 7px;
text-align:left;vertical-align:top;font-size:14px}th{background:#f6f8fa}pre{white-space:pre-wrap;margin:0}
.decision{font-weight:bold}.pass{color:#1a7f37}.review{color:#9a6700}.fail{color:#cf222e}
.near{background:#fff8c5;border-radius:3px;padding:0 3px}.note{background:#fff8c5;border:1px solid #d4a72c;padding:.5em;margin:.5em 0}.muted{color:#656d76}
iframe{width:100%;height:900px;border:1px solid #d0d7de}"""


@dataclass(frozen=True)
class Links:
    """URL builders; `plugin` is where the plugin's app is mounted, `airflow` the UI's root."""

    plugin: str
    airflow: str

    def run(self, domain: str, run_id: str, leaf: str = "") -> str:
        url = self.plugin + gate_page_run_path(domain, run_id)
        return f"{url}/{leaf}" if leaf else url

    def airflow_run(self, dag_id: str, run_id: str) -> str:
        return self.airflow + airflow_run_path(dag_id, run_id)

    def required_action(self, dag_id: str, run_id: str) -> str:
        return self.airflow + required_action_path(dag_id, run_id)

    def airflow_dag(self, dag_id: str) -> str:
        return self.airflow + airflow_dag_path(dag_id)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _when(iso: str) -> str:
    """An ISO time as `2026-12-09 13:05 UTC` (unparseable: as given)."""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


NEAR_LIMIT = 0.1  # a passing figure this close to its threshold (share of the threshold, at least 0.02) is marked


def _near_limit(value: float | None, threshold: float | None, comparison: str) -> bool:
    """Passes, but by less than NEAR_LIMIT: the figure a reviewer should look at twice."""
    if not isinstance(value, int | float) or not isinstance(threshold, int | float):
        return False
    margin = value - threshold if comparison == ">=" else threshold - value
    return 0 <= margin <= max(NEAR_LIMIT * abs(threshold), 0.02)


def _marked(cell: str, near: bool, threshold: float | None) -> str:
    if not near:
        return cell
    return f'<span class="near" title="passes, but within {NEAR_LIMIT:.0%} of its limit {_score(threshold)}">{cell}</span>'


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _range(interval: list[float] | None) -> str:
    """` [low–high]`: the score's interval over rows, or nothing when the report has none."""
    return "" if not interval else f' <span class="muted">[{interval[0]:.3f}–{interval[1]:.3f}]</span>'


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _outcome_class(outcome: str) -> str:
    return "fail" if outcome == FAILED_VALIDATION else outcome


def _decision(decision: str | None) -> str:
    d = decision or "unknown"
    css = _outcome_class(d)
    return f'<span class="decision {escape(css)}" data-decision="{escape(d)}">{escape(d)}</span>'


def _validation(validation: dict[str, dict[str, Any] | None]) -> str:
    parts = []
    for batch, result in validation.items():
        if result is None:
            parts.append(f'{escape(batch)}: <span class="muted">not run</span>')
        else:
            outcome = "pass" if result["success"] else "fail"
            parts.append(f'{escape(batch)}: <span class="{outcome}">{outcome}</span> '
                         f'({escape(str(result.get("successful")))}/{escape(str(result.get("evaluated")))})')
    return "<br>".join(parts) or "—"


def _publication(run: GateRun, links: Links) -> tuple[str, str]:
    """(status cell, approved-by cell)."""
    pub = run.publication
    if pub is None:
        if run.end_state == "awaiting review":
            required_action = escape(links.required_action(run.dag_id, run.run_id))
            until = f" until {escape(_when(run.review_until))}" if run.review_until else ""
            return (f'<a class="review" data-end-state="awaiting review" target="_top" href="{required_action}">'
                    f"awaiting review{until}</a>", "—")
        return ('<span class="fail" data-end-state="not published" title="the run stopped after the gate, or is '
                'still running: see its Airflow run">not published</span>', "—")
    why = f' title="{escape(pub.reason)}"' if pub.reason else ""
    status = (f'<a data-end-state="{escape(pub.status)}"{why} '
              f'href="{escape(links.run(run.domain, run.run_id, MANIFEST))}">{escape(pub.status)}</a>')
    if pub.is_latest:
        status += " (latest)"
    if pub.status == "published":
        approved = escape(pub.approved_by) if pub.approved_by else '<span class="muted">gate (no review)</span>'
        if pub.review_comment:
            approved += f": <q>{escape(pub.review_comment)}</q>"
    else:
        approved = "—"
    return status, approved


def trend_svg(runs: list[GateRun], width: int = 640, height: int = 180) -> str:
    """MAUVE (points coloured by decision), the bar it had to clear and the real-vs-real reference,
    oldest run on the left; y from 0 to 1."""
    scored = [r for r in sorted(runs, key=lambda r: (r.created_at or "", r.run_id)) if r.mauve is not None]
    if not scored:
        return '<p class="muted">No scored runs yet: no trend to draw.</p>'
    left, right, top, bottom = 40, 150, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / (len(scored) - 1) if len(scored) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - min(max(v, 0.0), 1.0))

    def line(values: list[float | None], colour: str, dash: str, level: bool = False) -> str:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values) if v is not None)
        if level and len(values) == 1 and values[0] is not None:  # one run: the bar as a level, not a lone point
            points = f"{left},{y(values[0]):.1f} {left + plot_w},{y(values[0]):.1f}"
        return (f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5" '
                f'stroke-dasharray="{dash}"/>')

    parts = [f'<line x1="{left}" y1="{y(t):.1f}" x2="{left + plot_w}" y2="{y(t):.1f}" stroke="#eaeef2"/>'
             f'<text x="{left - 6}" y="{y(t) + 4:.1f}" font-size="10" text-anchor="end">{t:.2f}</text>'
             for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    parts.append(line([r.mauve_reference for r in scored], "#57606a", "2 3", level=True))
    parts.append(line([r.mauve_threshold for r in scored], "#cf222e", "6 3", level=True))
    parts.append(line([r.mauve for r in scored], "#0969da", ""))
    for i, r in enumerate(scored):
        colour = COLOURS.get(_outcome_class(r.verdict or ""), "#57606a")
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(r.mauve):.1f}" r="4" fill="{colour}">'
                     f"<title>{escape(r.run_id)}: {escape(r.verdict or '?')}, MAUVE {r.mauve:.3f}</title></circle>")
    first, last = (scored[0].created_at or "")[:10], (scored[-1].created_at or "")[:10]
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="10">{escape(first)}</text>'
                 f'<text x="{left + plot_w}" y="{height - 8}" font-size="10" text-anchor="end">{escape(last)}</text>')
    for i, (label, colour, dash) in enumerate((("MAUVE", "#0969da", ""), ("bar to pass", "#cf222e", "6 3"),
                                               ("real vs real", "#57606a", "2 3"))):
        ly = top + 12 + 16 * i
        parts.append(f'<line x1="{width - right + 10}" y1="{ly}" x2="{width - right + 34}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}"/>'
                     f'<text x="{width - right + 40}" y="{ly + 4}" font-size="11">{label}</text>')
    return (f'<svg class="trend" role="img" aria-label="MAUVE trend" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


HISTORY_COLUMNS = ["date", "run", "decision", "MAUVE", "reference", "bar", "leakage", "duplicates",
                   "kept / dropped", "GX validation", "end state", "approved by"]


def _history_cells(run: GateRun, links: Links) -> list[str]:
    run_link = f'<a href="{escape(links.run(run.domain, run.run_id))}">{escape(run.run_id)}</a>'
    if run.error:
        unreadable = f'<span class="fail">report unreadable: {escape(run.error)}</span>'
        return ["—", run_link, unreadable] + [""] * (len(HISTORY_COLUMNS) - 3)
    status, approved = _publication(run, links)
    kept = f"{run.rows_kept if run.rows_kept is not None else '—'} / {run.rows_dropped if run.rows_dropped is not None else '—'}"
    cells = [escape((run.created_at or "—").replace("T", " ")), run_link, _decision(run.verdict),
             _marked(f'<span class="mauve" title="{escape(run.mauve_explanation or "")}">{_score(run.mauve)}</span>',
                     _near_limit(run.mauve, run.mauve_threshold, ">="), run.mauve_threshold)
             + _range(run.mauve_interval), _score(run.mauve_reference) + _range(run.mauve_reference_interval),
             _score(run.mauve_threshold),
             _rate(run.leakage_rate), _rate(run.duplicate_rate), escape(kept), _validation(run.validation),
             status, approved]
    return cells


def _freshness(history: DomainHistory, now: datetime | None = None) -> str:
    """How long since the domain last published, and how many runs in a row have not."""
    if history.error or not history.runs:
        return ""
    now = now or datetime.now(UTC)
    if history.last_published is None:
        since = '<span class="fail">never published</span>'
    else:
        hours = (now - datetime.fromisoformat(history.last_published)).total_seconds() / 3600
        age = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"
        since = f"last published {age} ago"
    streak = history.unpublished_streak
    failing = f' · <span class="fail">{streak} run{"s" if streak != 1 else ""} in a row not published</span>' \
        if streak else ""
    return f'<p class="freshness" data-unpublished-streak="{streak}">{since}{failing}</p>'


END_STATES = ("published", "quarantined", "awaiting review", "not published")
DECISIONS = ("pass", "review", "fail", FAILED_VALIDATION)


@dataclass(frozen=True)
class RunFilter:
    """What the overview shows: one domain, one decision, one end state (None: all). The trend and the
    freshness line always cover every run of a domain; only the table rows are narrowed."""

    domain: str | None = None
    decision: str | None = None
    end_state: str | None = None

    def keeps(self, run: GateRun) -> bool:
        return ((self.decision is None or run.verdict == self.decision)
                and (self.end_state is None or run.end_state == self.end_state))

    def form(self, domains: list[str]) -> str:
        def select(name: str, label: str, values: tuple[str, ...] | list[str], chosen: str | None) -> str:
            options = "".join(f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>{escape(v)}</option>'
                              for v in values)
            return f'<label>{label} <select name="{name}"><option value="">all</option>{options}</select></label> '

        return ('<form class="filters" method="get">' + select("domain", "domain", domains, self.domain)
                + select("decision", "decision", DECISIONS, self.decision)
                + select("end_state", "end state", END_STATES, self.end_state)
                + '<button type="submit">show</button></form>')


def overview_page(histories: list[DomainHistory], broken: list[BrokenDomain], links: Links,
                  only: RunFilter | None = None) -> str:
    only = only or RunFilter()
    body = ["<h1>Synthetic data gates</h1>", only.form([h.domain for h in histories])]
    histories = [h for h in histories if only.domain is None or h.domain == only.domain]
    for b in broken:
        body.append(f'<div class="note broken-domain">Domain config skipped: {escape(b.error)}</div>')
    if not histories and not broken:
        body.append('<p class="muted">No domains configured (or none you may read).</p>')
    for h in histories:
        body.append(f'<section id="domain-{escape(h.domain)}" data-domain="{escape(h.domain)}">'
                    f"<h2>{escape(h.domain)}</h2><p class=muted>DAG "
                    f'<a target="_top" href="{escape(links.airflow_dag(h.dag_id))}">{escape(h.dag_id)}</a> · '
                    f"store <code>{escape(h.store_uri)}</code></p>" + _freshness(h))
        if h.error:
            body.append(f'<div class="note">{escape(h.error)}</div>')
        if h.runs:
            shown = [r for r in h.runs if only.keeps(r)]
            table = html_table(HISTORY_COLUMNS, [_history_cells(r, links) for r in shown],
                               table_attrs="class=history",
                               row_attrs=[f'data-run-id="{escape(r.run_id)}"' for r in shown])
            body.append(trend_svg(h.runs) + (table if shown else '<p class="muted">No run matches the filter.</p>'))
        elif not h.error:
            body.append('<p class="muted">No gated runs yet.</p>')
        body.append("</section>")
    return _page("Synthetic data gates", "".join(body))


def detail_page(detail: RunDetail, links: Links) -> str:
    run, report = detail.run, detail.report
    status, approved = _publication(run, links)
    body = [f'<p><a href="{escape(links.plugin)}/">← all domains</a></p>',
            f"<h1>{escape(run.domain)}: run <code>{escape(run.run_id)}</code></h1>",
            f'<p>Decision: {_decision(run.verdict)} · MAUVE <span class="mauve">{_score(run.mauve)}</span>'
            f"{_range(run.mauve_interval)} (bar {_score(run.mauve_threshold)}, real vs real "
            f"{_score(run.mauve_reference)}{_range(run.mauve_reference_interval)}) · "
            f'<a target="_top" href="{escape(links.airflow_run(run.dag_id, run.run_id))}">Airflow run</a></p>',
            f'<p class="explanation">{escape(run.mauve_explanation or "")}</p>',
            "<ul>" + "".join(f"<li>{escape(str(r))}</li>" for r in run.reasons) + "</ul>"]
    if detail.error:
        body.append(f'<div class="note">{escape(detail.error)}</div>')
    body.append("<h2>Figures</h2>" + html_table(["figure", "value"], [
        ["created", escape(run.created_at or "—")], ["leakage rate", _rate(run.leakage_rate)],
        ["duplicate rate", _rate(run.duplicate_rate)],
        ["k-NN precision (realism) vs held-out", f"{_score(run.precision)} (threshold {_score(run.min_precision)})"],
        ["k-NN recall (coverage) vs held-out", f"{_score(run.recall)} (threshold {_score(run.min_recall)})"],
        ["rows in", escape(str(run.rows_input))],
        ["rows kept", escape(str(run.rows_kept))], ["rows dropped", escape(str(run.rows_dropped))],
        ["dropped by reason", escape(str((report.get("counts") or {}).get("dropped_by_reason", {})))],
        ["GX validation", _validation(run.validation)], ["publication", status], ["approved by", approved]]))
    criteria = report.get("criteria") or []
    body.append("<h2>Criteria</h2>" + html_table(["metric", "value", "threshold", "outcome", "reason"], [
        [escape(str(c.get("metric"))),
         _marked(_score(c.get("value")), c.get("outcome") == "pass" and _near_limit(
             c.get("value"), c.get("threshold"), c.get("comparison", "")), c.get("threshold")),
         f"{escape(str(c.get('comparison', '')))} "
         f"{_score(c.get('threshold'))}", _decision(c.get("outcome")), escape(str(c.get("reason", "")))]
        for c in criteria]))
    if detail.manifest is not None:
        pub = run.publication
        body.append(f"<h2>Published data</h2><p>{escape(pub.status)} at <code>{escape(pub.uri)}</code> "
                    f"(ds {escape(str(pub.ds))}, {escape(str(pub.rows))} rows) · "
                    f'<a href="{escape(links.run(run.domain, run.run_id, MANIFEST))}">manifest</a></p>')
    if detail.report_html_available:
        body.append('<h2>Gate report</h2><iframe sandbox title="gate report" '
                    f'src="{escape(links.run(run.domain, run.run_id, GATE_REPORT_HTML))}"></iframe>')
    else:
        body.append('<p class="muted">No HTML gate report stored for this run.</p>')
    samples = report.get("samples") or {}
    kept = [[str(i), f"<pre>{escape(str(t))}</pre>"] for i, t in enumerate(samples.get("kept") or [])]
    dropped = [[escape(str(d.get("reason"))), escape(str(d.get("detail", ""))), f"<pre>{escape(str(d.get('text')))}</pre>"]
               for d in samples.get("dropped") or []]
    body.append(f"<details open><summary><h2 style=display:inline>Sample rows kept ({len(kept)})</h2></summary>"
                + (html_table(["#", "text"], kept) if kept else '<p class="muted">none</p>') + "</details>")
    body.append(f"<details open><summary><h2 style=display:inline>Sample rows dropped ({len(dropped)})</h2></summary>"
                + (html_table(["reason", "detail", "text"], dropped) if dropped else '<p class="muted">none</p>')
                + "</details>")
    identities = report.get("identities") or {}
    body.append("<h2>Identities</h2>" + html_table(["identity", "value"], [
        [escape(str(k)), f"<code>{escape(str(v))}</code>"] for k, v in sorted(identities.items())]))
    return _page(f"{run.domain} {run.run_id} gate", "".join(body))
