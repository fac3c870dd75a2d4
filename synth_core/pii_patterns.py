"""The PII pattern table: named regexes that targets (validation) and synthetic rows (gate) are held to.

A leaf module (it imports nothing of ours), so the config can check pattern names on load without
importing the validation or quality packages. A domain names patterns from `PII_PATTERNS` or gives its
own as `regex:<pattern>`.
"""

from __future__ import annotations

import re

PII_PATTERNS = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "phone": r"(?<!\d)(?:\+\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?!\d)",
    "card_number": r"(?<!\d)(?:\d{4}[ -]){3}\d{4}(?!\d)|(?<!\d)\d{16}(?!\d)",
    "us_ssn": r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)",
}
CUSTOM_PREFIX = "regex:"


def pattern_regex(spec: str) -> str:
    """The regex of a pattern name, or of a `regex:<pattern>` spec."""
    return spec.removeprefix(CUSTOM_PREFIX) if spec.startswith(CUSTOM_PREFIX) else PII_PATTERNS[spec]


def check_pattern_spec(spec: str) -> None:
    """Raise ValueError, naming the spec, unless it is a known pattern name or a compilable `regex:<pattern>`."""
    if not spec.startswith(CUSTOM_PREFIX) and spec not in PII_PATTERNS:
        raise ValueError(f"{spec!r}: must be one of {sorted(PII_PATTERNS)} or '{CUSTOM_PREFIX}<pattern>'")
    try:
        re.compile(pattern_regex(spec))
    except re.error as exc:
        raise ValueError(f"{spec!r}: not a valid regex ({exc})") from None
