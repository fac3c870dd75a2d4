"""The Great Expectations suite of a domain, as data, and running it: the specs built from the domain's
`validation` section, GX Core on an in-memory pandas batch (ephemeral context), the failures in a few
words, and a small HTML page of the result.

PII is found by the gate's detector (Presidio, `synth_core.quality.pii`), not by a regex expectation: a
regex cannot check a card's Luhn sum or tell a phone number from "6000-2000". Each forbidden pattern
becomes a boolean column `pii:<name>` (`with_pii_flags`) that GX expects to be all false, so the result
counts the rows without copying the PII into it.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any, Literal

from synth_core.config import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from synth_core.config import DomainConfig

Batch = Literal["targets", "synthetic"]

_PARTIAL_KEYS = ("partial_unexpected_list", "partial_unexpected_counts", "partial_unexpected_index_list",
                 "unexpected_list", "unexpected_index_list", "unexpected_index_query")



def expectation_specs(config: DomainConfig, batch: Batch) -> list[dict[str, Any]]:
    """The suite as data: [{type, kwargs, meta}], from the domain's YAML."""
    v = config.validation
    required = ["text", "split", *config.source.metadata_columns] if batch == "targets" else ["text"]
    specs = [{"type": "expect_column_to_exist", "kwargs": {"column": c}, "meta": {"check": f"required:{c}"}}
             for c in required]
    specs += [
        {"type": "expect_table_row_count_to_be_between",
         "kwargs": {"min_value": v.min_rows, "max_value": v.max_rows}, "meta": {"check": "row_count"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "text"}, "meta": {"check": "not_null"}},
        {"type": "expect_column_value_lengths_to_be_between",
         "kwargs": {"column": "text", "min_value": v.text_length[0], "max_value": v.text_length[1]},
         "meta": {"check": "text_length"}},
    ]
    if v.unique_text:
        specs.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "text"},
                      "meta": {"check": "unique_text"}})
    for name in v.forbid_patterns:
        specs.append({"type": "expect_column_values_to_be_in_set",
                      "kwargs": {"column": pii_column(name), "value_set": [False]},
                      "meta": {"check": f"pii:{name}", "pii": True}})
    for i, extra in enumerate(v.extra_expectations):
        if extra.get("on", "both") in (batch, "both"):
            specs.append({"type": extra["type"], "kwargs": dict(extra.get("kwargs", {})),
                          "meta": {"check": f"extra[{i}]", "config_key": f"validation.extra_expectations[{i}]"}})
    return specs


def pii_column(name: str) -> str:
    return f"pii:{name}"


def with_pii_flags(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """`frame` with a boolean column per forbidden PII pattern: does the row's text contain it."""
    from synth_core.quality.pii import PiiScanner

    scanner = PiiScanner(names)
    found = [scanner.found(text) if isinstance(text, str) else set() for text in frame["text"]]
    return frame.assign(**{pii_column(name): [name in row for row in found] for name in names})


def run_suite(frame: pd.DataFrame, specs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Validate `frame` with GX Core on an ephemeral context; returns the JSON-able result (PII scrubbed)."""
    # GX logs hundreds of INFO lines on import ("Skipping registering function ..."): they flooded task logs
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.registry import get_expectation_impl

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = gx.ExpectationSuite(name=name)
    for spec in specs:
        where = spec["meta"].get("config_key", spec["type"])
        try:
            suite.add_expectation(get_expectation_impl(spec["type"])(**spec["kwargs"], meta=spec["meta"]))
        except Exception as exc:  # GX raises its own and pydantic errors for unknown names and bad kwargs
            raise ConfigError(f"{where}: {spec['type']}({spec['kwargs']}) is not a valid GX expectation: "
                              f"{str(exc).splitlines()[0]}") from None
    asset = context.data_sources.add_pandas("synth").add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY").to_json_dict()
    for item in result["results"]:
        if item["expectation_config"].get("meta", {}).get("pii"):
            for key in _PARTIAL_KEYS:
                item["result"].pop(key, None)
    return result


def failed_expectations(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each failed expectation with what was observed, in a few words."""
    failures = []
    for item in result["results"]:
        if item["success"]:
            continue
        cfg, res = item["expectation_config"], item.get("result", {})
        if item.get("exception_info", {}).get("raised_exception"):
            observed: Any = f"error: {item['exception_info']['exception_message']}"
        elif "observed_value" in res:
            observed = res["observed_value"]
        else:
            observed = {k: res[k] for k in ("unexpected_count", "unexpected_percent", "partial_unexpected_list")
                        if k in res}
            if "partial_unexpected_list" in observed:
                observed["examples"] = [str(x)[:80] for x in observed.pop("partial_unexpected_list")[:3]]
        failures.append({"expectation": cfg["type"], "check": cfg.get("meta", {}).get("check", ""),
                         "column": cfg["kwargs"].get("column"), "observed": observed})
    return failures


def render_html(title: str, result: dict[str, Any]) -> str:
    """A small self-contained page: one row per expectation, failures first."""
    from synth_core.html_table import html_table

    rows = sorted(result["results"], key=lambda r: r["success"])
    table = html_table(["status", "expectation", "check", "arguments", "result"], [
        ["pass" if r["success"] else "FAIL", html.escape(r["expectation_config"]["type"]),
         html.escape(str(r["expectation_config"].get("meta", {}).get("check", ""))),
         f"<code>{html.escape(str({k: v for k, v in r['expectation_config']['kwargs'].items() if k != 'batch_id'}))}"
         "</code>", f"<code>{html.escape(str(r.get('result', {}))[:500])}</code>"] for r in rows],
        row_attrs=[f"class={'ok' if r['success'] else 'fail'}" for r in rows])
    stats = result["statistics"]
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}td{border-bottom:1px solid #ddd;padding:4px;vertical-align:top}"
            ".fail{background:#fdd}.ok{background:#efe}</style>"
            f"<h1>{html.escape(title)}</h1><p>{'PASSED' if result['success'] else 'FAILED'}: "
            f"{stats['successful_expectations']} of {stats['evaluated_expectations']} expectations met.</p>"
            f"{table}")
