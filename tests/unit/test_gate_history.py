"""Gate history read back from a real store: three runs made by the real steps (refresh, GX validation,
the gate on hashed features, publish with and without review, quarantine), broken configs and stores,
and the review page's HTML (escaping, trend chart)."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from synth_core import gate_history
from synth_core.config import load_domain
from synth_core.layout import gate_report_key
from synth_core.store import LocalStore, TransientStoreError, open_store
from tests.gate_fixtures import DOMAIN, gate_run, make_gate_runs, synthetic_rows, write_domain_yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("domains")
    runs = make_gate_runs(write_domain_yaml(folder))
    return folder, load_domain(folder / f"{DOMAIN}.yaml"), runs


def test_history_rows_carry_the_reports_figures_newest_first(gated):
    _, config, runs = gated
    history = gate_history.domain_history(config)
    assert history.error is None and history.dag_id == f"synth__{DOMAIN}"
    by_id = {r.run_id: r for r in history.runs}
    assert set(by_id) == {r.run_id for r in runs.values()}
    created = [r.created_at for r in history.runs]
    assert created == sorted(created, reverse=True)
    scored, reviewed, leaky = (by_id[runs[n].run_id] for n in ("scored", "reviewed", "leaky"))
    report = runs["scored"].report
    assert scored.decision == "pass" and scored.mauve == report["mauve"]["synthetic"]["mean"]
    assert scored.mauve_reference == report["mauve"]["reference"]["mean"]
    mauve_criterion = next(c for c in report["criteria"] if c["metric"] == "mauve")
    assert scored.mauve_threshold == mauve_criterion["threshold"]
    assert (scored.rows_input, scored.rows_kept, scored.rows_dropped) == (40, 40, 0)
    assert scored.validation["targets"]["success"] and scored.validation["synthetic"]["success"]
    assert scored.publication.status == "published" and scored.publication.approved_by is None
    assert reviewed.decision == "review" and reviewed.publication.approved_by == "alice"
    # the deadline recorded when it was sent to review: a week after the request
    request = open_store(config.store.uri).get_json(f"{DOMAIN}/{reviewed.run_id}/review/review_request.json")
    assert reviewed.review_until == request["until"]
    assert datetime.fromisoformat(request["until"]) - datetime.fromisoformat(request["requested_at"]) == timedelta(days=7)
    assert scored.review_until is None
    assert reviewed.publication.is_latest and not scored.publication.is_latest
    assert leaky.decision == "fail" and leaky.mauve is None and leaky.leakage_rate == 1.0
    # every gated batch is validated before routing; an empty batch fails it, but the gate's fail is the verdict
    assert leaky.publication.status == "quarantined" and not leaky.validation["synthetic"]["success"]
    assert leaky.verdict == "fail"
    assert len(gate_history.domain_history(config, limit=2).runs) == 2


def test_run_detail_has_report_samples_and_manifest(gated):
    _, config, runs = gated
    detail = gate_history.run_detail(config, runs["reviewed"].run_id)
    assert detail.report == runs["reviewed"].report and detail.report_html_available
    assert detail.manifest["approved_by"] == "alice" and detail.manifest["run_id"] == runs["reviewed"].run_id
    assert b"<html" in gate_history.gate_report_html(config, runs["reviewed"].run_id).lower()
    with pytest.raises(FileNotFoundError):
        gate_history.run_detail(config, "no_such_run")
    with pytest.raises(ValueError):
        gate_history.run_detail(config, "../escape")


def test_broken_and_duplicate_yamls_are_reported_not_raised(gated, tmp_path):
    folder, _, _ = gated
    (tmp_path / "ok.yaml").write_text((folder / f"{DOMAIN}.yaml").read_text())
    (tmp_path / "twin.yml").write_text((folder / f"{DOMAIN}.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    (tmp_path / "wrong.yaml").write_text("name: other\nsource: {kind: file, uri: x.jsonl}\ngate: {mauve_floor: 7}\n")
    configs, broken = gate_history.load_domains(tmp_path)
    assert [c.name for c in configs] == [DOMAIN]  # one rule with the DAG factory: ok.yaml keeps the name
    errors = " | ".join(b.error for b in broken)
    assert "not valid YAML" in errors and "gate.mauve_floor=7.0" in errors
    assert f"twin.yml: name={DOMAIN!r}: already used by" in errors
    configs, broken = gate_history.load_domains(tmp_path / "missing")
    assert configs == [] and "SYNTH_DOMAINS_DIR" in broken[0].error


def test_domains_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTH_DOMAINS_DIR", str(tmp_path))
    assert gate_history.domains_dir() == tmp_path
    monkeypatch.delenv("SYNTH_DOMAINS_DIR")
    assert gate_history.domains_dir() == REPO / "domains"


def test_unreadable_report_and_unreachable_store_do_not_break_the_history(gated, tmp_path):
    _, config, runs = gated
    store = LocalStore(config.store.uri.removeprefix("file://"))
    store.put_bytes(gate_report_key(DOMAIN, "corrupt_run"), b"{not json")
    try:
        by_id = {r.run_id: r for r in gate_history.domain_history(config).runs}
        assert by_id["corrupt_run"].error.startswith("JSONDecodeError") and by_id["corrupt_run"].decision is None
        assert by_id[runs["scored"].run_id].decision == "pass"
    finally:
        (store.path / gate_report_key(DOMAIN, "corrupt_run")).unlink()

    class Unreachable(LocalStore):
        def list(self, prefix: str) -> list[str]:
            raise TransientStoreError("s3 endpoint unreachable")

    history = gate_history.domain_history(config, store=Unreachable(tmp_path))
    assert history.runs == [] and "unreachable" in history.error


def test_summarise_tolerates_a_minimal_report():
    run = gate_history.summarise_report("d", "r", {"decision": "fail"})
    assert (run.decision, run.mauve, run.mauve_threshold, run.rows_kept) == ("fail", None, None, None)


@pytest.fixture
def pages():
    sys.path.insert(0, str(REPO / "plugins"))
    try:
        import synth_gate_review_pages

        yield synth_gate_review_pages
    finally:
        sys.path.remove(str(REPO / "plugins"))


def test_pages_escape_every_value_from_the_store(pages, gated):
    _, config, runs = gated
    hostile = "<script>alert(1)</script>"
    report = {**runs["scored"].report, "reasons": [hostile], "samples": {"kept": [hostile], "dropped": []}}
    run = gate_history.summarise_report(DOMAIN, f"run{hostile}", report)
    links = pages.Links(plugin="/synth-gates", airflow="")
    history = gate_history.DomainHistory(DOMAIN, "synth__x", "file:///s", [run])
    detail = gate_history.RunDetail(run, report, None, True)
    broken = [gate_history.BrokenDomain("b.yaml", hostile)]
    for html in (pages.overview_page([history], broken, links), pages.detail_page(detail, links)):
        assert "<script>" not in html and "&lt;script&gt;" in html
    assert "/runs/run%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in pages.detail_page(detail, links)


def test_pages_show_the_mauve_intervals_thresholds_and_why(pages, gated):
    _, config, runs = gated
    report = runs["scored"].report
    run = gate_history.summarise_report(DOMAIN, runs["scored"].run_id, report)
    low, high = report["mauve"]["bootstrap"]["synthetic_interval"]
    assert run.mauve_interval == [low, high] and run.mauve_reference_interval is not None
    assert run.mauve_explanation.startswith(f"MAUVE {run.mauve:.3f} (90% interval {low:.3f} to {high:.3f})")
    links = pages.Links(plugin="/synth-gates", airflow="")
    detail = pages.detail_page(gate_history.RunDetail(run, report, None, True), links)
    overview = pages.overview_page([gate_history.DomainHistory(DOMAIN, "synth__x", "file:///s", [run])], [], links)
    for html in (detail, overview):
        assert f"[{low:.3f}–{high:.3f}]" in html
    assert "clear of the bar" in detail and "k-NN recall (coverage) vs held-out" in detail
    assert f"{run.recall:.3f} (threshold —)" in detail


def test_trend_chart_draws_scored_runs_oldest_first(pages, gated):
    _, config, _ = gated
    runs = gate_history.domain_history(config).runs
    svg = pages.trend_svg(runs)
    assert svg.count("<circle") == 2 and svg.index("pass") < svg.index("review")
    assert "No scored runs" in pages.trend_svg([r for r in runs if r.mauve is None])


def test_trend_tick_labels_sit_on_their_gridlines_and_one_run_draws_its_bar(pages, gated):
    import re

    _, config, _ = gated
    [run] = [r for r in gate_history.domain_history(config).runs if r.mauve is not None][:1]
    svg = pages.trend_svg([run])
    gridlines = [float(v) for v in re.findall(r'<line x1="40" y1="([\d.]+)"[^>]*stroke="#eaeef2"', svg)]
    labels = [(float(v), float(y)) for y, v in re.findall(r'<text x="34" y="([\d.]+)"[^>]*>([\d.]+)</text>', svg)]
    assert [v for v, _ in labels] == [0.0, 0.25, 0.5, 0.75, 1.0]  # two decimals: 0.25 no longer reads "0.2"
    top, bottom = min(gridlines), max(gridlines)
    for (value, label_y), line_y in zip(labels, gridlines, strict=True):
        assert label_y - 4 == pytest.approx(line_y) and line_y == pytest.approx(bottom - value * (bottom - top))
    polylines = re.findall(r'<polyline points="([^"]+)"', svg)
    assert len(polylines) == 3 and all(len(points.split()) == 2 for points in polylines[:2])  # reference, bar


def test_a_batch_the_gate_passes_but_validation_rejects_shows_as_failed_validation(pages, tmp_path):
    """The synthetic validation runs before publishing; a batch it rejects is never shown as a pass."""
    config = load_domain(write_domain_yaml(tmp_path)).with_overrides({"validation.extra_expectations": [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "text", "regex": "^NEVER"},
         "on": "synthetic"}]})
    store = open_store(config.store.uri)
    run = gate_run(config, store, "manual__2026-02-01T00:00:00+00:00", "2026-02-01", synthetic_rows())
    assert run.report["decision"] == "pass" and run.outcome["reason"].startswith("synthetic validation failed")
    [row] = gate_history.domain_history(config, store=store).runs
    assert row.decision == "pass" and row.verdict == "failed validation"
    assert row.publication.status == "quarantined" and row.to_dict()["verdict"] == "failed validation"
    links = pages.Links(plugin="/synth-gates", airflow="")
    overview = pages.overview_page([gate_history.domain_history(config, store=store)], [], links)
    detail = pages.detail_page(gate_history.run_detail(config, row.run_id, store=store), links)
    for html in (overview, detail):
        assert 'data-decision="failed validation"' in html and 'data-decision="pass"' not in html.split("<h2")[0]


def test_every_run_shows_one_end_state(pages, gated):
    """published / quarantined come from the destination's manifests; a review with neither is awaiting
    review (linked to its Airflow run, where the Required Action is); anything else was not published."""
    _, config, runs = gated
    by_id = {r.run_id: r for r in gate_history.domain_history(config).runs}
    states = {name: by_id[runs[name].run_id].end_state for name in ("scored", "reviewed", "leaky")}
    assert states == {"scored": "published", "reviewed": "published", "leaky": "quarantined"}
    waiting = gate_history.GateRun(DOMAIN, "r-wait", "synth__x", decision="review",
                                   review_until="2026-12-09T13:05:41+00:00")
    stopped = gate_history.GateRun(DOMAIN, "r-stop", "synth__x", decision="pass")
    assert (waiting.end_state, stopped.end_state) == ("awaiting review", "not published")
    links = pages.Links(plugin="/synth-gates", airflow="")
    page = pages.overview_page([gate_history.DomainHistory(DOMAIN, "synth__x", "file:///s",
                                                           [waiting, stopped, by_id[runs["leaky"].run_id]])], [], links)
    assert ('data-end-state="awaiting review" target="_top" href="/dags/synth__x/runs/r-wait/tasks/review/'
            'required_actions">awaiting review until 2026-12-09 13:05 UTC</a>') in page
    assert 'data-end-state="not published"' in page
    assert 'data-end-state="quarantined" title="synthetic validation failed' in page  # the reason, on hover


def test_freshness_says_how_long_since_a_publish_and_how_many_runs_in_a_row_did_not(pages):
    from datetime import UTC, datetime

    def run(created_at: str, decision: str, status: str | None = None) -> gate_history.GateRun:
        publication = gate_history.Publication(status, "file:///p", "m") if status else None
        return gate_history.GateRun(DOMAIN, created_at, "synth__x", created_at=created_at, decision=decision,
                                    publication=publication)

    runs = [run("2026-12-03T00:00:00+00:00", "review"), run("2026-12-02T00:00:00+00:00", "fail", "quarantined"),
            run("2026-12-01T12:00:00+00:00", "pass"), run("2026-11-28T00:00:00+00:00", "pass", "published")]
    history = gate_history.DomainHistory(DOMAIN, "synth__x", "file:///s", runs)
    assert history.last_published == "2026-11-28T00:00:00+00:00" and history.unpublished_streak == 2
    line = pages._freshness(history, now=datetime(2026, 12, 3, 12, tzinfo=UTC))
    assert "last published 6 days ago" in line and "2 runs in a row not published" in line
    never = gate_history.DomainHistory(DOMAIN, "synth__x", "file:///s", runs[:2])
    assert "never published" in pages._freshness(never) and never.unpublished_streak == 1


def test_overview_filters_narrow_the_tables_but_not_the_trend(pages, gated):
    _, config, runs = gated
    history = gate_history.domain_history(config)
    links = pages.Links(plugin="/synth-gates", airflow="")
    quarantined = pages.overview_page([history], [], links, pages.RunFilter(end_state="quarantined"))
    assert f'data-run-id="{runs["leaky"].run_id}"' in quarantined
    assert f'data-run-id="{runs["scored"].run_id}"' not in quarantined and 'class="trend"' in quarantined
    assert '<option value="quarantined" selected>' in quarantined
    passed = pages.overview_page([history], [], links, pages.RunFilter(decision="pass"))
    assert f'data-run-id="{runs["scored"].run_id}"' in passed and f'data-run-id="{runs["leaky"].run_id}"' not in passed
    other = pages.overview_page([history], [], links, pages.RunFilter(domain="elsewhere"))
    assert f'data-domain="{DOMAIN}"' not in other
    none = pages.overview_page([history], [], links, pages.RunFilter(end_state="awaiting review"))
    assert "No run matches the filter." in none


def test_figures_that_pass_close_to_their_limit_are_marked(pages):
    links = pages.Links(plugin="/synth-gates", airflow="")

    def page(mauve: float) -> str:
        run = gate_history.GateRun(DOMAIN, "r1", "synth__x", decision="pass", mauve=mauve, mauve_threshold=0.78)
        return pages.overview_page([gate_history.DomainHistory(DOMAIN, "synth__x", "file:///s", [run])], [], links)

    assert 'class="near" title="passes, but within 10% of its limit 0.780"' in page(0.80)
    assert 'class="near"' not in page(0.95) and 'class="near"' not in page(0.70)  # clear pass; a miss is no "near"
    assert pages._near_limit(0.009, 0.01, "<=") and not pages._near_limit(0.011, 0.01, "<=")
