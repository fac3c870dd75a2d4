"""The domains the factory builds a DAG for: every `*.yaml` under `SYNTH_DOMAINS_DIR` (default `<repo>/domains`).

Loading a YAML is cheap (PyYAML and the typed config; no model, store or network), so it happens at
parse time. A file that does not load is kept with its error instead of its config, so one broken
domain never hides the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow.sdk import Asset

from synth_core.config import ConfigError, DomainConfig, dag_id_for, domains_dir, load_domain


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


def discover(directory: Path | None = None) -> list[DomainFile]:
    """Every domain YAML in `directory`, sorted by file name; a second file claiming a name is an error."""
    found: dict[str, DomainFile] = {}
    for path in sorted((directory or domains_dir()).glob("*.yaml")):
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


def approved_asset(domain: str) -> Asset:
    """The Asset a domain's `publish` task updates; its events carry the gate metrics in `extra`."""
    return Asset(name=f"synth_{domain}_approved", uri=f"synth://{domain}/approved")
