"""PII detection with Microsoft Presidio's pattern recognizers, for target validation and the gate alike.

Presidio checks what a regex cannot: a card number's Luhn checksum, an IBAN's checksum, phone numbers
through the `phonenumbers` library in the formats of several countries, an e-mail's top-level domain.
No NER model is used (none can be downloaded here): the NLP engine is a blank spaCy pipeline, which
only tokenises. Custom `regex:<pattern>` specs become Presidio pattern recognizers of their own, so every
spec goes through one analyzer.

A flagged row is dropped and shown in the report with every match redacted: the gate report is read
by reviewers and must not spread the PII it caught.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from synth_core.pii_patterns import PII_PATTERNS, check_pattern_spec, custom_regex

# Presidio's own confidence for a bare pattern match without context words (phone numbers score 0.4,
# IP addresses 0.6, Luhn-valid cards 1.0); a US SSN without context scores 0.05-0.5, so it counts too.
MIN_SCORE = 0.05
PHONE_REGIONS = ("US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "IL", "IN", "BR", "JP", "AU")
# On arithmetic text a bare number run such as "6000-2000" or "260-24-63-25" is a valid phone number in
# some region: phonenumbers alone flagged 4% of GSM8K's rows. A phone match counts only where it is
# written as one (a leading "+" or "(") or a word within 40 characters says so.
PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|call|ring|dial|tel|telephone|mobile|cell|fax|whatsapp|sms|text|"
                           r"contact|reach|number|hotline|t[ée]l[ée]phone|appel\w*|anruf\w*|telefon\w*|llam\w*)\b")
PHONE_CONTEXT_CHARS = 40


def _offline_email_recognizer() -> Any:
    """Presidio's e-mail recognizer, checking top-level domains against tldextract's bundled suffix list:
    the default fetches the list from the internet on first use (a network call, and a traceback without one)."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extract(pattern_text).fqdn)

    return OfflineEmailRecognizer()


def _phone_recognizer() -> Any:
    """Presidio's phone recognizer (phonenumbers' matcher over `PHONE_REGIONS`), keeping only matches written
    as a phone number or near a word that says so (`PHONE_CONTEXT`)."""
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class WrittenPhoneRecognizer(PhoneRecognizer):
        def analyze(self, text, entities, nlp_artifacts=None):
            def written_as_phone(result) -> bool:
                around = text[max(0, result.start - PHONE_CONTEXT_CHARS):result.end + PHONE_CONTEXT_CHARS]
                return text[result.start] in "+(" or bool(PHONE_CONTEXT.search(around))

            return [r for r in super().analyze(text, entities, nlp_artifacts) if written_as_phone(r)]

    return WrittenPhoneRecognizer(supported_regions=PHONE_REGIONS, leniency=1)


@lru_cache(maxsize=8)
def _analyzer(custom: tuple[str, ...]) -> Any:
    """One analyzer per process and custom-pattern list (building one takes ~0.5 s)."""
    for name in ("presidio-analyzer", "presidio_analyzer"):
        logging.getLogger(name).setLevel(logging.ERROR)  # it logs every recognizer it loads
    import spacy
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        IpRecognizer,
        UsSsnRecognizer,
    )

    class BlankSpacyEngine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacyEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (CreditCardRecognizer(), _offline_email_recognizer(), _phone_recognizer(),
                       UsSsnRecognizer(), IbanRecognizer(), IpRecognizer()):
        registry.add_recognizer(recognizer)
    for spec in custom:
        registry.add_recognizer(PatternRecognizer(supported_entity=spec, name=spec,
                                                  patterns=[Pattern(spec, custom_regex(spec), 1.0)]))
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])


class PiiScanner:
    """Finds and redacts the configured PII patterns (names of `PII_PATTERNS` or `regex:<pattern>` specs)."""

    def __init__(self, specs: list[str]) -> None:
        for spec in specs:
            check_pattern_spec(spec)
        self.specs = list(specs)
        self._entity_spec = {PII_PATTERNS.get(spec, spec): spec for spec in specs}
        self._analyzer = _analyzer(tuple(s for s in specs if custom_regex(s) is not None)) if specs else None

    def matches(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, spec) of every match in `text`, by position."""
        if self._analyzer is None or not text:
            return []
        found = self._analyzer.analyze(text, language="en", entities=list(self._entity_spec),
                                       score_threshold=MIN_SCORE)
        return sorted((r.start, r.end, self._entity_spec[r.entity_type]) for r in found)

    def found(self, text: str) -> set[str]:
        """Every configured pattern that occurs in `text`."""
        return {spec for _, _, spec in self.matches(text)}

    def find(self, text: str) -> str | None:
        """The first configured pattern (in the configured order) that occurs in `text`, or None."""
        found = self.found(text)
        return next((spec for spec in self.specs if spec in found), None)

    def redact(self, text: str) -> str:
        """`text` with every match replaced by `[redacted <spec>]`; overlapping matches become one."""
        pieces, cursor = [], 0
        for start, end, spec in self.matches(text):
            if start < cursor:  # overlaps the previous match, which already covers it
                continue
            pieces += [text[cursor:start], f"[redacted {spec}]"]
            cursor = end
        return "".join(pieces) + text[cursor:]
