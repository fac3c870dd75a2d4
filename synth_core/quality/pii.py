"""PII patterns a synthetic row must not contain: the validation step's named patterns, plus custom
`regex:<pattern>` entries, so targets and synthetic rows are held to the same list.

A flagged row is dropped and shown in the report with every match redacted: the gate report is read
by reviewers and must not spread the PII it caught.
"""

from __future__ import annotations

import re

from synth_core.validation import PII_PATTERNS

CUSTOM_PREFIX = "regex:"


def _regex(spec: str) -> str:
    return spec.removeprefix(CUSTOM_PREFIX) if spec.startswith(CUSTOM_PREFIX) else PII_PATTERNS[spec]


def check_pattern_spec(spec: str) -> None:
    """Raise ValueError unless `spec` is a known pattern name or a compilable `regex:<pattern>`."""
    if not spec.startswith(CUSTOM_PREFIX) and spec not in PII_PATTERNS:
        raise ValueError(f"{spec!r}: unknown PII pattern (known: {', '.join(sorted(PII_PATTERNS))}, "
                         f"or {CUSTOM_PREFIX}<pattern>)")
    try:
        re.compile(_regex(spec))
    except re.error as exc:
        raise ValueError(f"{spec!r}: not a valid regex ({exc})") from None


class PiiScanner:
    """Finds and redacts the configured PII patterns."""

    def __init__(self, specs: list[str]) -> None:
        for spec in specs:
            check_pattern_spec(spec)
        self._patterns = [(spec, re.compile(_regex(spec))) for spec in specs]

    def find(self, text: str) -> str | None:
        """The first configured pattern that occurs in `text`, or None."""
        return next((spec for spec, pattern in self._patterns if pattern.search(text)), None)

    def redact(self, text: str) -> str:
        for spec, pattern in self._patterns:
            text = pattern.sub(lambda _match, spec=spec: f"[redacted {spec}]", text)
        return text
