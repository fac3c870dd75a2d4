"""PII in synthetic rows: the named patterns of `synth_core.pii_patterns` (the table validation uses too)
plus custom `regex:<pattern>` entries, so targets and synthetic rows are held to the same list.

A flagged row is dropped and shown in the report with every match redacted: the gate report is read
by reviewers and must not spread the PII it caught.
"""

from __future__ import annotations

import re

from synth_core.pii_patterns import check_pattern_spec, pattern_regex


class PiiScanner:
    """Finds and redacts the configured PII patterns."""

    def __init__(self, specs: list[str]) -> None:
        for spec in specs:
            check_pattern_spec(spec)
        self._patterns = [(spec, re.compile(pattern_regex(spec))) for spec in specs]

    def find(self, text: str) -> str | None:
        """The first configured pattern that occurs in `text`, or None."""
        return next((spec for spec, pattern in self._patterns if pattern.search(text)), None)

    def redact(self, text: str) -> str:
        for spec, pattern in self._patterns:
            text = pattern.sub(lambda _match, spec=spec: f"[redacted {spec}]", text)
        return text
