#!/usr/bin/env bash
# One-shot setup that the `airflow-init` compose service runs, as root, before any other Airflow
# component starts. Every step is idempotent, so `docker compose up` may run it on every start.
#
#  1. migrate the Airflow metadata database;
#  2. write the SimpleAuthManager password file (the admin login of the UI);
#  3. make sure the artifact bucket exists on the configured S3 endpoint;
#  4. hand the shared volumes to the Airflow user (AIRFLOW_UID, group 0).
set -euo pipefail

AIRFLOW_UID="${AIRFLOW_UID:-50000}"
SHARED_DIRS=(/opt/airflow/logs /opt/airflow/config /opt/airflow/artifacts /opt/airflow/published
             "${SYNTH_CACHE_DIR:-/opt/airflow/cache}")

echo "Airflow $(airflow version), metadata DB migration"
airflow db migrate

# train_soft_prompt and generate run in this pool: its size is how many run at once on the GPU workers
echo "Creating the gpu pool (${SYNTH_GPU_POOL_SLOTS:-1} slot(s))"
airflow pools set gpu "${SYNTH_GPU_POOL_SLOTS:-1}" "SoftSRV training and generation on GPU workers"

password_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?must name the password file}"
echo "Writing the UI password file ${password_file}"
mkdir -p "$(dirname "$password_file")"
python - "$password_file" <<'PY'
import json
import os
import sys

users = {os.environ["AIRFLOW_ADMIN_USERNAME"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}
with open(sys.argv[1], "w") as file:
    json.dump(users, file)
PY
chmod 600 "$password_file"

if [[ -n "${SYNTH_S3_BUCKET:-}" ]]; then
  echo "Checking bucket s3://${SYNTH_S3_BUCKET} at ${AWS_ENDPOINT_URL:-the AWS default endpoint}"
  python - <<'PY'
import os

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

bucket = os.environ["SYNTH_S3_BUCKET"]
region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
# path-style, as synth_core.s3 does: the compose host name `s3` has no per-bucket DNS names
s3 = boto3.client("s3", region_name=region, config=Config(s3={"addressing_style": "path"}))
try:
    s3.head_bucket(Bucket=bucket)
    print(f"bucket {bucket} exists")
except ClientError as exc:
    if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
        raise SystemExit(f"bucket {bucket}: {exc}")
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **kwargs)
    print(f"bucket {bucket} created")
except BotoCoreError as exc:
    raise SystemExit(f"bucket {bucket}: {exc}") from exc
PY
fi

echo "Handing ${SHARED_DIRS[*]} to ${AIRFLOW_UID}:0"
mkdir -p "${SHARED_DIRS[@]}"
chown -R "${AIRFLOW_UID}:0" "${SHARED_DIRS[@]}"
chmod -R g+rwX "${SHARED_DIRS[@]}"
echo "airflow-init done"
