"""Run-scoped artifact store over a local directory or S3: the only thing steps on different machines share.

Every step writes under `<root>/<domain>/<run_id>/<step>/`. Keys are `/`-separated and relative to the
root; both backends behave the same: a missing key raises `FileNotFoundError`, a local write is atomic
(temp file + rename) as an S3 PUT is, an unreachable S3 (after botocore's retries) raises
`TransientStoreError` and a rejected credential or permission raises `StoreAccessError`. `put_if` is a
compare-and-swap (S3 conditional PUT; a file lock and a content hash locally) that raises
`WriteConflict` when another writer got there first.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from synth_core.s3 import DEFAULT_MAX_ATTEMPTS, s3_client, split_s3_uri

log = logging.getLogger(__name__)

MULTIPART_BYTES = 64 * 2**20


class StoreError(RuntimeError):
    """An artifact store operation failed."""


class TransientStoreError(StoreError):
    """The store could not be reached after retries; retrying the step later may succeed."""


class StoreAccessError(StoreError):
    """The store refused the request (credentials, permissions, or an invalid request: any 4xx answer but
    not-found and conflicts); retrying will not help."""


class WriteConflict(StoreError):
    """A conditional write lost: the object changed (or appeared) since it was read. Read it again."""


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"{key!r}: store keys are relative, without '..'")
    return key


def json_bytes(obj: Any) -> bytes:
    """How the store writes JSON: indented, sorted keys, one trailing newline."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


class ArtifactStore(ABC):
    """Bytes under keys; JSON and files are conveniences on top."""

    root: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> str:
        """Write (or overwrite) one object; returns its URI."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix` (recursively), sorted."""

    @abstractmethod
    def uri_for(self, key: str) -> str: ...

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, json_bytes(obj))

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_file(self, key: str, path: str | Path) -> str:
        return self.put_bytes(key, Path(path).read_bytes())

    def put_copy(self, key: str, data: bytes, source: ArtifactStore, source_key: str) -> str:
        """Write `data`, which was read from `source`'s `source_key`: a store that can copy server-side
        from there does so (nothing travels through this process); any other writes the bytes."""
        return self.put_bytes(key, data)

    @abstractmethod
    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object and a version token for `put_if`, or None when it does not exist."""

    @abstractmethod
    def put_if(self, key: str, data: bytes, version: str | None) -> None:
        """Write only if the object is still at `version` (None: only if it does not exist yet), else
        raise `WriteConflict`: a compare-and-swap, for pointers that concurrent writers update."""


def file_uri(path: Path) -> str:
    """`file://` + the absolute path as it is: `Path.as_uri()` would percent-encode the `=` and `:` of
    partition and run folders (`domain%3Dboolq`), and such a URI fails when pasted into a shell."""
    return "file://" + Path(path).resolve().as_posix()


class LocalStore(ArtifactStore):
    def __init__(self, root: str | Path):
        self.path = Path(root).resolve()
        self.root = file_uri(self.path)

    def _path(self, key: str) -> Path:
        return self.path / _check_key(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri_for(key)}: no such artifact") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def put_if(self, key: str, data: bytes, version: str | None) -> None:
        """Under an exclusive lock on a sibling lock file, compare the content hash, then rename into place."""
        import fcntl

        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f".{target.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.get_versioned(key)
            if (current[1] if current else None) != version:
                raise WriteConflict(f"{self.uri_for(key)} changed since it was read")
            self.put_bytes(key, data)

    def list(self, prefix: str) -> list[str]:
        base = self.path / prefix.strip("/")
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.path).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def uri_for(self, key: str) -> str:
        return file_uri(self._path(key))


_ACCESS_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket",
                 "InvalidBucketName", "AllAccessDisabled", "403"}


class S3Store(ArtifactStore):
    """Objects of at least `multipart_bytes` go up in parts of that size (S3's minimum part is 5 MiB), so a
    large batch part is neither one long request nor limited to S3's 5 GiB single-PUT cap."""

    def __init__(self, uri: str, conn_id: str = "", max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 multipart_bytes: int = MULTIPART_BYTES):
        self.bucket, self.prefix = split_s3_uri(uri)
        self.root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = s3_client(conn_id, max_attempts)
        self.multipart_bytes = multipart_bytes

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_check_key(key)}" if self.prefix else _check_key(key)

    def _call(self, action: str, key: str, fn: Any, **kwargs: Any) -> Any:
        """Run one S3 call, turning botocore's errors into the store's three kinds."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"{self.uri_for(key)}: no such artifact") from None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise WriteConflict(f"{action} {self.uri_for(key)}: changed since it was read ({code})") from None
            if code in _ACCESS_CODES:
                raise StoreAccessError(f"{action} {self.uri_for(key)} refused ({code}): check the S3 "
                                       f"credentials, bucket and permissions for {self.client.meta.endpoint_url}"
                                       ) from exc
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if 400 <= status < 500 and status not in (408, 429):  # not a timeout or throttling: a bad request
                raise StoreAccessError(f"{action} {self.uri_for(key)} refused ({status} {code}): the request is "
                                       "invalid (check the URI and key); retrying will not help") from exc
            raise TransientStoreError(f"{action} {self.uri_for(key)} failed ({code}): {exc}") from exc
        except (BotoCoreError, S3UploadFailedError) as exc:
            raise TransientStoreError(f"{action} {self.uri_for(key)} failed after retries: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> str:
        if len(data) < self.multipart_bytes:
            self._call("write", key, self.client.put_object, Key=self._key(key), Body=data)
        else:
            from boto3.s3.transfer import TransferConfig

            parts = TransferConfig(multipart_threshold=self.multipart_bytes, multipart_chunksize=self.multipart_bytes)
            self._call("write", key, lambda Bucket, Key: self.client.upload_fileobj(
                io.BytesIO(data), Bucket, Key, Config=parts), Key=self._key(key))
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        return self._call("read", key, self.client.get_object, Key=self._key(key))["Body"].read()

    def put_copy(self, key: str, data: bytes, source: ArtifactStore, source_key: str) -> str:
        """CopyObject when the source is on the same S3 endpoint and the object is a single part (so its
        ETag is the MD5 of its bytes): the copy must carry exactly `data`, the bytes the caller read and
        checksummed; if the source changed since (ETag differs) or cannot be read with these credentials,
        `data` is uploaded instead."""
        same_endpoint = isinstance(source, S3Store) and source.client.meta.endpoint_url == self.client.meta.endpoint_url
        if not same_endpoint or len(data) >= self.multipart_bytes:
            return self.put_bytes(key, data)
        try:
            answer = self._call("copy", key, self.client.copy_object, Key=self._key(key),
                                CopySource={"Bucket": source.bucket, "Key": source._key(source_key)})
        except StoreAccessError as exc:
            log.info("server-side copy of %s refused (%s): uploading it", source.uri_for(source_key), exc)
            return self.put_bytes(key, data)
        if answer["CopyObjectResult"]["ETag"].strip('"') != hashlib.md5(data, usedforsecurity=False).hexdigest():
            log.warning("%s changed since it was read: uploading the bytes read", source.uri_for(source_key))
            return self.put_bytes(key, data)
        return self.uri_for(key)

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            answer = self._call("read", key, self.client.get_object, Key=self._key(key))
        except FileNotFoundError:
            return None
        return answer["Body"].read(), answer["ETag"]

    def put_if(self, key: str, data: bytes, version: str | None) -> None:
        """S3 conditional PUT: If-Match the ETag read, or If-None-Match * for a new object."""
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        self._call("write", key, self.client.put_object, Key=self._key(key), Body=data, **condition)

    def exists(self, key: str) -> bool:
        try:
            self._call("check", key, self.client.head_object, Key=self._key(key))
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        full = "/".join(part for part in (self.prefix, prefix.strip("/")) if part)
        full = full + "/" if full else ""
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("list", prefix, self.client.list_objects_v2, Prefix=full, **token)
            keys += [obj["Key"][len(self.prefix) + 1 if self.prefix else 0:] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def open_store(uri: str, conn_id: str = "", max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> ArtifactStore:
    """A store for `s3://bucket/prefix`, `file:///abs`, `file://relative` (to the cwd) or a plain path."""
    if uri.startswith("s3://"):
        return S3Store(uri, conn_id, max_attempts)
    return LocalStore(uri.removeprefix("file://"))
