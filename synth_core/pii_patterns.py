"""The PII pattern table: the names a domain may list in `validation.forbid_patterns` and
`gate.pii_patterns`, and the Presidio entity each name stands for.

A leaf module (it imports nothing of ours, nor Presidio), so the config can check pattern names on load
without importing the detector. A domain names patterns from `PII_PATTERNS` or gives its own as
`regex:<pattern>`; detection itself is in `synth_core.quality.pii`.
"""

from __future__ import annotations

import re

PII_PATTERNS = {
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",  # the phonenumbers library's matcher, several countries' formats
    "card_number": "CREDIT_CARD",  # with its Luhn checksum: a 16-digit order number is not a card
    "us_ssn": "US_SSN",
    "iban": "IBAN_CODE",  # with its checksum
    "ip_address": "IP_ADDRESS",
}
CUSTOM_PREFIX = "regex:"


def custom_regex(spec: str) -> str | None:
    """The regex of a `regex:<pattern>` spec; None for a named pattern."""
    return spec.removeprefix(CUSTOM_PREFIX) if spec.startswith(CUSTOM_PREFIX) else None


def check_pattern_spec(spec: str) -> None:
    """Raise ValueError, naming the spec, unless it is a known pattern name or a compilable `regex:<pattern>`."""
    if not spec.startswith(CUSTOM_PREFIX) and spec not in PII_PATTERNS:
        raise ValueError(f"{spec!r}: must be one of {sorted(PII_PATTERNS)} or '{CUSTOM_PREFIX}<pattern>'")
    try:
        re.compile(custom_regex(spec) or "")
    except re.error as exc:
        raise ValueError(f"{spec!r}: not a valid regex ({exc})") from None
