"""OpenLineage events for a domain run, sent through Airflow's OpenLineage provider.

The provider already reports every task of the domain DAG. These events add what only the pipeline
knows: one OpenLineage run per domain run (job `synth.<domain>`), started when the target snapshot is
taken (inputs: the governed source and the snapshot) and completed when the batch is published or
quarantined (output: the published or quarantined partition), with two custom run facets:

- `synth_gate`: the gate's decision, its reasons and its scalar figures (MAUVE, the reference, rates);
- `synth_softPrompt`: the soft-prompt checkpoint hash, the target snapshot hash, the config hash, the
  generator and the embedder.

The provider's own configuration decides where events go (`[openlineage] transport`, `config_path` or
`config_conn_id`; e.g. `AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "http", "url": "http://marquez:5000"}'`),
and the same settings work for the CLI, which runs outside Airflow. With no transport configured the
provider is disabled and nothing is sent. A lineage backend that is down never fails a run: the
provider logs the failed emission and the pipeline goes on.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import attrs
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    dataset_version_dataset,
    job_type_job,
    output_statistics_output_dataset,
    sql_job,
)

if TYPE_CHECKING:
    from synth_core.config import DomainConfig

PRODUCER = "urn:synth_core"
FACET_SCHEMA = PRODUCER + ":docs/openlineage-facets.json"  # the facets' JSON Schema, in this repository
JOB_PREFIX = "synth."


@attrs.define
class GateRunFacet(RunFacet):
    """The gate's verdict on the run's batch."""

    decision: str | None
    reasons: list[str] = attrs.field(factory=list)
    metrics: dict[str, Any] = attrs.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA + "#/$defs/GateRunFacet"


@attrs.define
class SoftPromptRunFacet(RunFacet):
    """What produced the batch: the trained soft prompt and the data and settings it came from."""

    checkpointHash: str | None  # noqa: N815 - OpenLineage facets name fields in camelCase
    snapshotHash: str | None  # noqa: N815
    configHash: str | None  # noqa: N815
    generator: str | None
    embedder: str | None

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA + "#/$defs/SoftPromptRunFacet"


def dataset_address(uri: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) for a storage URI: `s3://bucket` + key, or `file` + absolute path."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return f"s3://{parsed.netloc}", parsed.path.lstrip("/")
    return "file", parsed.path if parsed.scheme == "file" else uri


def run_uuid(domain: str, run_id: str) -> str:
    """The same OpenLineage run id for a domain run in every process (start and completion differ)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PRODUCER}/{domain}/{run_id}"))


def source_dataset(lineage: dict[str, Any]) -> tuple[InputDataset, dict[str, Any]]:
    """The governed source as an input dataset, and the job facets that describe how it was read."""
    source = lineage["source"]
    if source["kind"] == "sql":
        connection = source.get("conn_id") or source.get("conn_env") or "default"
        return InputDataset(namespace=f"airflow-connection://{connection}", name="query"), {
            "sql": sql_job.SQLJobFacet(query=source["query"], producer=PRODUCER)}
    namespace, name = dataset_address(source["uri"])
    return InputDataset(namespace=namespace, name=name), {}


def snapshot_dataset(lineage: dict[str, Any], snapshot_uri: str) -> InputDataset:
    namespace, name = dataset_address(snapshot_uri)
    return InputDataset(namespace=namespace, name=name, facets={
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=lineage["snapshot_hash"],
                                                                 producer=PRODUCER)})


def _event(state: RunState, config: DomainConfig, run_id: str, inputs: list[InputDataset],
           outputs: list[OutputDataset], run_facets: dict[str, RunFacet], job_facets: dict[str, Any]) -> RunEvent:
    from airflow.providers.openlineage import conf

    job_type = job_type_job.JobTypeJobFacet(processingType="BATCH", integration="SYNTH", jobType="DOMAIN_RUN",
                                            producer=PRODUCER)
    return RunEvent(eventType=state, eventTime=datetime.now(UTC).isoformat(), producer=PRODUCER,
                    run=Run(runId=run_uuid(config.name, run_id), facets=run_facets),
                    job=Job(namespace=conf.namespace(), name=JOB_PREFIX + config.name,
                            facets={"jobType": job_type, **job_facets}),
                    inputs=inputs, outputs=outputs)


def emit(event: RunEvent) -> bool:
    """Send `event` through the provider's adapter; False (nothing sent) when OpenLineage is not configured."""
    from airflow.providers.openlineage import conf

    if conf.is_disabled():
        return False
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    OpenLineageAdapter().emit(event)
    return True


def run_started(config: DomainConfig, run_id: str, lineage: dict[str, Any], snapshot_uri: str) -> bool:
    """The domain run began: its inputs are the governed source and the snapshot taken from it."""
    source, job_facets = source_dataset(lineage)
    return emit(_event(RunState.START, config, run_id, [source, snapshot_dataset(lineage, snapshot_uri)], [],
                       {}, job_facets))


def run_completed(config: DomainConfig, run_id: str, lineage: dict[str, Any], snapshot_uri: str,
                  manifest: dict[str, Any], output_uri: str, size_bytes: int) -> bool:
    """The batch was published (or quarantined): the output partition, with the gate's and the soft prompt's
    facets taken from its manifest."""
    source, job_facets = source_dataset(lineage)
    namespace, name = dataset_address(output_uri)
    output = OutputDataset(namespace=namespace, name=name, outputFacets={
        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=manifest["rows"], size=size_bytes, fileCount=len(manifest["files"]), producer=PRODUCER)})
    gate, produced = manifest["gate"], manifest["lineage"]
    facets: dict[str, RunFacet] = {
        "synth_gate": GateRunFacet(decision=gate["decision"], reasons=list(gate["reasons"]),
                                   metrics=dict(gate["metrics"]), producer=PRODUCER),
        "synth_softPrompt": SoftPromptRunFacet(
            checkpointHash=produced["checkpoint_hash"], snapshotHash=produced["snapshot_hash"],
            configHash=produced["config_hash"], generator=produced["generator"], embedder=produced["embedder"],
            producer=PRODUCER)}
    return emit(_event(RunState.COMPLETE, config, run_id, [source, snapshot_dataset(lineage, snapshot_uri)],
                       [output], facets, job_facets))
