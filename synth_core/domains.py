"""Domain discovery: which YAML files are domains, and which of them load. The one rule, used by the
DAG factory (one DAG per domain) and the gate review page (one section per domain), so a domain that
has a DAG is exactly a domain that shows on the page.

Loading a YAML is cheap (PyYAML and the typed config; no model, store or network), so this runs at
DAG parse time. A file that does not load is kept with its error instead of its config, so one broken
domain never hides the others; a second file claiming a domain's name is such an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from synth_core.config import ConfigError, DomainConfig, load_domain
from synth_core.layout import dag_id_for

DOMAIN_FILE_PATTERNS = ("*.yaml", "*.yml")


def domains_dir() -> Path:
    """Where the domain YAMLs live: `$SYNTH_DOMAINS_DIR`, else the repository's `domains/` folder."""
    return Path(os.environ.get("SYNTH_DOMAINS_DIR") or Path(__file__).resolve().parents[1] / "domains")


@dataclass(frozen=True)
class DomainFile:
    """One domain YAML: its config, or the `ConfigError` message that names the file, key and value.

    `name` is the config's name; a broken file goes by its stem (by convention the domain's name).
    """

    path: Path
    name: str
    config: DomainConfig | None = None
    error: str = ""

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.name)


def discover_domains(directory: Path | None = None) -> list[DomainFile]:
    """Every domain YAML in `directory`, sorted by file name; the first file to claim a name keeps it."""
    directory = directory or domains_dir()
    paths = sorted({p for pattern in DOMAIN_FILE_PATTERNS for p in directory.glob(pattern)}, key=lambda p: p.name)
    found: dict[str, DomainFile] = {}
    for path in paths:
        try:
            config = load_domain(path)
            domain = DomainFile(path.resolve(), config.name, config)
        except ConfigError as exc:
            domain = DomainFile(path.resolve(), path.stem, error=str(exc))
        if domain.name in found:
            name = f"{path.stem}_duplicate"
            domain = DomainFile(domain.path, name, error=f"{path}: name={domain.name!r}: already used by "
                                                           f"{found[domain.name].path}")
        found[domain.name] = domain
    return list(found.values())
