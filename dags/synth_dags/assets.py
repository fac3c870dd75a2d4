"""The Asset each domain's DAG publishes; which domains exist is `synth_core.domains.discover_domains`."""

from __future__ import annotations

from airflow.sdk import Asset


def approved_asset(domain: str) -> Asset:
    """The Asset a domain's `publish` task updates; its events carry the gate metrics in `extra`."""
    return Asset(name=f"synth_{domain}_approved", uri=f"synth://{domain}/approved")
