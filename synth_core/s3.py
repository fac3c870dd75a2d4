"""One boto3 S3 client factory, so every step reaches AWS S3, MinIO or SeaweedFS the same way.

Without a connection id, endpoint, region and credentials follow boto3's normal chain (environment,
shared config, instance role), with `SYNTH_S3_ENDPOINT` or `AWS_ENDPOINT_URL` naming a non-AWS endpoint.
With one (`store.conn_id`, `publish.conn_id`), the client comes from the Amazon provider's `S3Hook`, so an
Airflow connection of type `aws` works with the provider's usual fields: login/password as access
key/secret, or none (the worker's own chain), extra `region_name`, `endpoint_url`, `role_arn` (assumed
through STS, with `assume_role_method` and `assume_role_kwargs`), `aws_session_token`, `profile_name`.
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


def s3_client(conn_id: str = "", max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Any:
    """A boto3 S3 client; botocore retries transient errors with exponential back-off and jitter."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=5,
                    read_timeout=30, s3={"addressing_style": "path"})
    if conn_id:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=conn_id, config=config).get_conn()
    kwargs: dict[str, Any] = {}
    endpoint = os.environ.get("SYNTH_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        kwargs["region_name"] = "us-east-1"
    return boto3.session.Session().client("s3", config=config, **kwargs)
