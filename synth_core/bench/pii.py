"""PII detection benchmark: the Presidio-based scanner against the regex table it replaced.

Two measures, per pattern name:
- precision and recall on a small hand-labelled set (`data/pii_labelled.jsonl`: e-mails, phone numbers of
  several countries, Luhn-valid cards, 16-digit numbers that are not cards, SSNs, IBANs, IP addresses,
  and arithmetic, code and prices that are not PII);
- the share of each seed domain's real target rows flagged: every one of them is a false positive
  (the seed data holds no PII), and one flagged target row fails the domain's validation.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from synth_core.quality.pii import PiiScanner

LABELLED = Path(__file__).parent / "data" / "pii_labelled.jsonl"
PATTERNS = ("email", "phone", "card_number", "us_ssn", "iban", "ip_address")
# The baseline: the regex table the product used before Presidio (commit f934e34).
LEGACY_REGEXES = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "phone": r"(?<!\d)(?:\+\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?!\d)",
    "card_number": r"(?<!\d)(?:\d{4}[ -]){3}\d{4}(?!\d)|(?<!\d)\d{16}(?!\d)",
    "us_ssn": r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)",
}

Detector = Callable[[str], set[str]]


def legacy_detector() -> Detector:
    compiled = {name: re.compile(regex) for name, regex in LEGACY_REGEXES.items()}
    return lambda text: {name for name, pattern in compiled.items() if pattern.search(text)}


def presidio_detector() -> Detector:
    return PiiScanner(list(PATTERNS)).found


def labelled_scores(rows: list[dict], detect: Detector) -> dict[str, dict]:
    """Per pattern: true/false positives, false negatives, precision and recall over labelled rows."""
    found = [detect(row["text"]) for row in rows]
    scores = {}
    for name in PATTERNS:
        tp = sum(name in f and name in row["pii"] for f, row in zip(found, rows, strict=True))
        fp = sum(name in f and name not in row["pii"] for f, row in zip(found, rows, strict=True))
        fn = sum(name not in f and name in row["pii"] for f, row in zip(found, rows, strict=True))
        scores[name] = {"tp": tp, "fp": fp, "fn": fn, "precision": round(tp / (tp + fp), 3) if tp + fp else None,
                        "recall": round(tp / (tp + fn), 3) if tp + fn else None}
    return scores


def flagged_targets(texts: list[str], detect: Detector) -> dict:
    """How many of a domain's (PII-free) target rows each detector flags, with examples, and its cost."""
    started = time.perf_counter()
    flagged = [(text, sorted(found)) for text in texts if (found := detect(text))]
    seconds = time.perf_counter() - started
    return {"rows": len(texts), "flagged": len(flagged), "ms_per_row": round(1000 * seconds / max(len(texts), 1), 2),
            "examples": [{"patterns": names, "text": text[:160]} for text, names in flagged[:3]]}


def run_pii_bench(domain_yamls: list[Path], labelled: Path = LABELLED) -> dict:
    from synth_core.config import load_domain
    from synth_core.sources import load_target_split

    rows = [json.loads(line) for line in labelled.read_text().splitlines() if line.strip()]
    detectors = {"regex (before)": legacy_detector(), "presidio (now)": presidio_detector()}
    result: dict = {"labelled_rows": len(rows), "labelled": {}, "targets": {}}
    for name, detect in detectors.items():
        result["labelled"][name] = labelled_scores(rows, detect)
    for path in domain_yamls:
        split = load_target_split(load_domain(path))
        texts = [*split.train, *split.validation, *split.heldout]
        result["targets"][path.stem] = {name: flagged_targets(texts, detect) for name, detect in detectors.items()}
    return result
