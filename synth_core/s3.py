"""One boto3 S3 client factory, so every step reaches AWS S3, MinIO or SeaweedFS the same way.

Endpoint, region and credentials follow boto3's normal chain (environment, shared config, instance
role), with `SYNTH_S3_ENDPOINT` or `AWS_ENDPOINT_URL` naming a non-AWS endpoint. An Airflow
connection id (type `aws`: login = access key, password = secret key, extra `endpoint_url` and
`region_name`) overrides the chain for deployments that keep secrets in Airflow.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

DEFAULT_MAX_ATTEMPTS = 5


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri!r}: not an s3://bucket[/prefix] URI")
    return parsed.netloc, parsed.path.strip("/")


def _airflow_connection_kwargs(conn_id: str) -> dict[str, Any]:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    kwargs = {"aws_access_key_id": conn.login or None, "aws_secret_access_key": conn.password or None,
              "endpoint_url": extra.get("endpoint_url") or None, "region_name": extra.get("region_name") or None}
    return {k: v for k, v in kwargs.items() if v}


def s3_client(conn_id: str = "", max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Any:
    """A boto3 S3 client; botocore retries transient errors with exponential back-off and jitter."""
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {}
    endpoint = os.environ.get("SYNTH_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if conn_id:
        kwargs.update(_airflow_connection_kwargs(conn_id))
    if "region_name" not in kwargs and not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        kwargs["region_name"] = "us-east-1"
    config = Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=5,
                    read_timeout=30, s3={"addressing_style": "path"})
    return boto3.session.Session().client("s3", config=config, **kwargs)
