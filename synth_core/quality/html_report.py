"""A self-contained HTML gate report a reviewer can read in any browser: no scripts, no links.

Rendered from the report's JSON dict only, so the page can be rebuilt from gate_report.json. Every
piece of text goes through `html.escape`; plots are matplotlib PNGs embedded as base64.
"""

from __future__ import annotations

import base64
import io
import json
from html import escape

from synth_core.html_table import html_table

_COLOURS = {"pass": "#1a7f37", "review": "#9a6700", "fail": "#cf222e"}
_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d0d7de;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f6f8fa}pre{white-space:pre-wrap;margin:0;font-size:12px}
.decision{font-size:2em;font-weight:bold;color:#fff;padding:.3em .8em;border-radius:6px;display:inline-block}
.pass{color:#1a7f37}.review{color:#9a6700}.fail{color:#cf222e}img{max-width:100%}"""


def _number(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3f}"


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _length_plot(histogram: dict) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2))
    axes = figure.subplots()
    edges = histogram["edges"]
    for name, counts in histogram["counts"].items():
        total = max(sum(counts), 1)
        axes.stairs([c / total for c in counts], edges, label=name, linewidth=2)
    axes.set(xlabel="characters per row", ylabel="share of rows", title="Length distribution")
    axes.legend()
    return _png(figure)


def _mauve_plot(mauve: dict, bar: float, review_band: float) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.2))
    axes = figure.subplots()
    names = ["synthetic vs held-out", "real train vs held-out"]
    means = [mauve["synthetic"]["mean"], mauve["reference"]["mean"]]
    intervals = [mauve["bootstrap"]["synthetic_interval"], mauve["bootstrap"]["reference_interval"]]
    pairs = list(zip(means, intervals, strict=True))
    errors = [[m - low for m, (low, _) in pairs], [high - m for m, (_, high) in pairs]]
    axes.bar(names, means, yerr=errors, capsize=6, color=["#0969da", "#8c959f"])
    axes.axhline(bar, color="#1a7f37", linestyle="--", label=f"pass bar {bar:.3f}")
    axes.axhline(bar - review_band, color="#9a6700", linestyle=":", label=f"review from {bar - review_band:.3f}")
    level = f"{mauve['bootstrap']['confidence']:.0%}"
    axes.set(ylim=(0, 1.05), ylabel=f"MAUVE ({level} interval over rows)", title="MAUVE")
    axes.legend(loc="lower right")
    return _png(figure)


def _leakage_table(leakage: dict) -> str:
    """Both rates with their intervals: real data copies train rows by chance too, so the batch is judged
    by its excess over real held-out rows."""
    level = f"{leakage['confidence']:.0%} interval"
    rows = [[escape(name), f"{p['count']} of {p['rows']}", f"{p['rate']:.1%}", f"{p['low']:.1%} to {p['high']:.1%}"]
            for name, p in (("synthetic batch", leakage["synthetic"]), ("real held-out rows", leakage["reference"]))]
    rows.append(["excess (synthetic - real)", "", f"{leakage['excess']:+.1%}",
                 f"{leakage['excess_low']:+.1%} to {leakage['excess_high']:+.1%}"])
    table = html_table(["rows", "near copies", "rate", level], rows)
    return table + f"<p>Allowed excess (gate.leakage_margin): {leakage['margin']:.1%}. Every copy is removed " \
                   "from the batch before publishing, whatever the decision.</p>"


def _metrics_section(report: dict) -> str:
    criteria = html_table(["metric", "value", "must be", "threshold", "outcome", "why"], [
        [escape(c["metric"]), _number(c["value"]), escape(c["comparison"]), _number(c["threshold"]),
         f'<b class="{escape(c["outcome"])}">{escape(c["outcome"])}</b>', escape(c["reason"])]
        for c in report["criteria"]])
    parts = ["<h2>Criteria</h2>", criteria]
    if report["mauve"]:
        mauve = report["mauve"]
        boot = mauve["bootstrap"]
        level = f"{boot['confidence']:.0%} interval over rows ({boot['resamples']} half-samples)"
        parts += ["<h2>MAUVE</h2>", html_table(["score", "mean over k-means seeds", level, "spread over seeds (sd)"], [
            [escape(name), _number(s["mean"]), f"{low:.3f} to {high:.3f}", _number(s["spread"])]
            for name, s, (low, high) in (
                ("synthetic vs real held-out", mauve["synthetic"], boot["synthetic_interval"]),
                ("reference: real train vs real held-out", mauve["reference"], boot["reference_interval"]))])]
        mauve_criterion = next(c for c in report["criteria"] if c["metric"] == "mauve")
        parts.append(_mauve_plot(mauve, mauve_criterion["threshold"], report["settings"]["gate"]["review_band"]))
    if report.get("checks"):
        checks = report["checks"]
        parts += ["<h2>Row checks</h2>", html_table(["check", "rule", "batch rows passing", "real held-out rows passing"], [
            [escape(name), escape(checks["describe"][name]), f"{rate:.1%}", f"{checks['real_heldout'][name]:.1%}"]
            for name, rate in checks["batch"].items()]),
            f"<p>{checks['rows_checked']} batch rows reached the checks; a row failing any check is dropped "
            "(gate_dropped_rows.parquet names the check).</p>"]
    if report.get("leakage"):
        parts += ["<h2>Near copies of train rows</h2>", _leakage_table(report["leakage"])]
    if report["shape"]:
        names = list(report["shape"]["synthetic"])
        parts += ["<h2>Diversity and shape</h2>", html_table(["metric", "synthetic", "real train (reference)"], [
            [escape(n), _number(report["shape"]["synthetic"][n]), _number(report["shape"]["real_train"][n])]
            for n in names])]
    parts.append(_length_plot(report["length_histogram"]))
    if (report.get("decoding") or {}).get("tried"):
        decoding = report["decoding"]
        parts += ["<h2>Decoding (auto)</h2>",
                  f"<p>Chosen: temperature {decoding['temperature']}, top-p {decoding['top_p']}: "
                  f"{escape(decoding['rule'])}.</p>",
                  html_table(["temperature", "top-p", "rows", "valid", "finished", "passing each check",
                              "MMD to validation (lower is closer)"], [
                      [str(t["temperature"]), str(t["top_p"]), str(t["rows"]), f"{t['valid_rate']:.0%}",
                       f"{t['finished_rate']:.0%}", _check_rates(t.get("check_pass_rates")), _number(t.get("mmd"))]
                      for t in decoding["tried"]])]
    return "".join(parts)


def _check_rates(rates: dict[str, float] | None) -> str:
    """`name 93%, ...`; a choice recorded before pass rates were (or a domain without checks) shows a dash."""
    return escape(", ".join(f"{name} {rate:.0%}" for name, rate in rates.items())) if rates else "-"


def _samples_section(report: dict) -> str:
    counts = report["counts"]
    parts = ["<h2>Rows</h2>", html_table(["input", "kept", "dropped"] + list(counts["dropped_by_reason"]), [
        [str(counts["input"]), str(counts["kept"]), str(counts["dropped"])]
        + [str(n) for n in counts["dropped_by_reason"].values()]])]
    if report.get("selection"):
        sel = report["selection"]
        spread = (f"{sel['selected']} were drawn to match how the train rows spread over {sel['clusters']} clusters "
                  f"and {sel['not_selected']} were left over" if sel["clusters"] else
                  f"all {sel['selected']} others were kept (no more than requested)")
        support = ("no support cut (generation.support_quantile is null)" if sel["support_threshold"] is None else
                   f"{sel['off_support']} lay off the train rows' support (nearest train row farther than "
                   f"{sel['support_threshold']:.3f})")
        parts.append(f"<p>Selection: {sel['requested']} rows requested; of the {sel['candidates']} that passed the "
                     f"filters, {support}; {spread}.</p>")
    parts += ["<h3>Dropped rows (sample per reason; all rows in gate_dropped_rows.parquet)</h3>",
              html_table(["row", "reason", "detail", "text"], [
                  [str(r["index"]), escape(r["reason"]), escape(r["detail"]), f"<pre>{escape(r['text'])}</pre>"]
                  for r in report["samples"]["dropped"]])]
    parts += ["<h3>Kept rows (sample)</h3>",
              html_table(["text"], [[f"<pre>{escape(t)}</pre>"] for t in report["samples"]["kept"]])]
    return "".join(parts)


def render_html(report: dict) -> str:
    """The report page: decision and reasons first, then metrics, plots, rows, settings."""
    decision = report["decision"]
    reasons = "".join(f"<li>{escape(r)}</li>" for r in report["reasons"])
    domain = escape(str(report["identities"].get("domain", "")))
    details = escape(json.dumps({"settings": report["settings"], "identities": report["identities"]},
                                indent=2, sort_keys=True))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Gate report {domain}</title>'
            f"<style>{_STYLE}</style></head><body><h1>Quality gate report: {domain}</h1>"
            f'<p><span class="decision" style="background:{_COLOURS.get(decision, "#57606a")}">'
            f"{escape(decision.upper())}</span></p><ul>{reasons}</ul>"
            f"{_metrics_section(report)}{_samples_section(report)}"
            f"<h2>Settings and identities</h2><pre>{details}</pre>"
            f"<p>Created {escape(report['created_at'])}</p></body></html>\n")
