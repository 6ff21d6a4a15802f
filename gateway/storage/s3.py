"""Recordings in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, SeaweedFS).

Only finished ciphertext ever goes there: a recording is sealed chunk by chunk into the local
spool (the write-ahead buffer), and the uploader (uploader.py) puts it in the bucket once it is
complete, truncated or recovered, with its SHA-256 checked by the store, then removes the local
copy. Object names are the spool's random names under the configured prefix: a bucket listing
shows random names and sizes, nothing else.

`TieredStore` is what the rest of the gateway uses: the spool for what is still local, the
bucket for the rest, behind the one Store interface (reads stream; nothing is staged on disk).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from ..config.values import parse_s3_url
from .spool import LocalSpool
from .store import OBJECT_NAME, ObjectNotFound, ObjectWriter, Store, StoreError, check_name

log = logging.getLogger(__name__)


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a readable raw stream (for a BufferedReader's readline)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._body.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


class S3Store(Store):
    """A bucket (and key prefix) of finished recordings."""

    def __init__(
        self,
        url: str,
        *,
        endpoint: str = "",
        region: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
        lock_mode: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.lock_mode = lock_mode.upper()  # "", "GOVERNANCE" or "COMPLIANCE"
        kwargs: dict[str, Any] = {
            "config": BotoConfig(
                connect_timeout=timeout_s,
                read_timeout=max(timeout_s, 30.0),
                retries={"max_attempts": 2, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        }
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if region:
            kwargs["region_name"] = region
        if access_key_id:  # else the standard chain: AWS_ACCESS_KEY_ID..., ~/.aws, instance roles
            kwargs["aws_access_key_id"] = access_key_id
            kwargs["aws_secret_access_key"] = secret_access_key
        self._s3 = boto3.client("s3", **kwargs)
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
        self._client_error = ClientError

    def key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _fail(self, e: Exception, name: str = "") -> StoreError:
        code = ""
        if isinstance(e, self._client_error):
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectNotFound(f"no object {name}")
        return StoreError(f"object store {self.url}: {code or e.__class__.__name__}: {str(e)[:200]}")

    # -- Store ------------------------------------------------------------------------------

    def create(self) -> ObjectWriter:
        raise StoreError("recordings are sealed into the local spool and uploaded when finished")

    def open(self, name: str) -> BinaryIO:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]
        except self._errors as e:
            raise self._fail(e, name) from None
        return io.BufferedReader(_BodyReader(body), buffer_size=1 << 16)

    def open_from(self, name: str, start: int) -> BinaryIO:
        if start == 0:
            return self.open(name)
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self.key(name), Range=f"bytes={start}-")[
                "Body"
            ]
        except self._errors as e:
            raise self._fail(e, name) from None
        return io.BufferedReader(_BodyReader(body), buffer_size=1 << 16)

    def versions(self, name: str) -> list[str]:
        """Every stored version of the object (and delete marker): a bucket with Object Lock is
        versioned, and a plain DELETE there only hides the bytes behind a marker."""
        key = self.key(name)
        found: list[str] = []
        try:
            pages = self._s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key)
            for page in pages:
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if v["Key"] == key:
                        found.append(str(v["VersionId"]))
        except self._errors as e:
            raise self._fail(e, name) from None
        return found

    def delete(self, name: str) -> None:
        """Remove the object's bytes for good: every version, not a delete marker. The store
        refuses while Object Lock retention or a legal hold still protects a version."""
        versions = self.versions(name)
        if not versions:
            raise ObjectNotFound(f"no object {name}")
        for version in versions:
            try:
                self._s3.delete_object(Bucket=self.bucket, Key=self.key(name), VersionId=version)
            except self._errors as e:
                err = self._fail(e, name)
                if self.lock_mode and "AccessDenied" in str(err):
                    err = StoreError(f"{err} (Object Lock retention or a legal hold still protects it)")
                raise err from None

    def _head(self, name: str) -> dict[str, Any]:
        try:
            head: dict[str, Any] = self._s3.head_object(
                Bucket=self.bucket, Key=self.key(name), ChecksumMode="ENABLED"
            )
            return head
        except self._errors as e:
            raise self._fail(e, name) from None

    def size(self, name: str) -> int:
        return int(self._head(name)["ContentLength"])

    def age_s(self, name: str) -> float:
        modified: datetime = self._head(name)["LastModified"]
        return time.time() - modified.timestamp()

    def names(self) -> Iterator[str]:
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(self.prefix) :]
                    if OBJECT_NAME.fullmatch(name):
                        yield name
        except self._errors as e:
            raise self._fail(e) from None

    # -- uploads and Object Lock ---------------------------------------------------------------

    def put(
        self,
        name: str,
        data: BinaryIO,
        size: int,
        sha256_hex: str,
        *,
        retain_until: datetime | None = None,
        legal_hold: bool = False,
    ) -> None:
        """Store one finished object, and make sure the store holds exactly those bytes: the
        store checks the SHA-256 it is given, and the object's size and checksum are read back."""
        checksum = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
        extra: dict[str, Any] = {}
        if self.lock_mode and retain_until is not None:
            extra["ObjectLockMode"] = self.lock_mode
            extra["ObjectLockRetainUntilDate"] = retain_until
        if self.lock_mode and legal_hold:  # a bucket without Object Lock refuses the header
            extra["ObjectLockLegalHoldStatus"] = "ON"
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self.key(name),
                Body=data,
                ContentLength=size,
                ChecksumSHA256=checksum,
                ContentType="application/octet-stream",
                **extra,
            )
        except self._errors as e:
            raise self._fail(e, name) from None
        head = self._head(name)
        stored = head.get("ChecksumSHA256")
        if int(head["ContentLength"]) != size or (stored is not None and stored != checksum):
            raise StoreError(f"object store {self.url}: {name} was stored altered (size or SHA-256 differs)")
        if stored is None and self._read_back_sha256(name) != sha256_hex:
            # A store that keeps no checksum (or does not say): the bytes themselves are read
            # back, because the caller deletes its own copy once this returns.
            raise StoreError(
                f"object store {self.url}: {name} was stored altered (its bytes read back differ)"
            )

    def _read_back_sha256(self, name: str) -> str:
        h = hashlib.sha256()
        try:
            with self.open(name) as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except self._errors as e:
            raise self._fail(e, name) from None
        return h.hexdigest()

    def set_legal_hold(self, name: str, on: bool) -> None:
        try:
            self._s3.put_object_legal_hold(
                Bucket=self.bucket, Key=self.key(name), LegalHold={"Status": "ON" if on else "OFF"}
            )
        except self._errors as e:
            raise self._fail(e, name) from None

    def lock_state(self, name: str) -> dict[str, Any]:
        """What the store says of an object's retention and legal hold (for verification)."""
        out: dict[str, Any] = {}
        unset = (  # "not set" as AWS, MinIO and SeaweedFS say it
            "NoSuchObjectLockConfiguration",
            "ObjectLockConfigurationNotFoundError",
            "NoSuchObjectLegalHold",
            "NoSuchObjectRetention",
        )
        try:
            r = self._s3.get_object_retention(Bucket=self.bucket, Key=self.key(name)).get("Retention", {})
            out["mode"], out["retain_until"] = r.get("Mode"), r.get("RetainUntilDate")
        except self._client_error as e:
            if e.response.get("Error", {}).get("Code") in unset:
                out["mode"] = out["retain_until"] = None
        except self._errors:
            pass
        try:
            hold = self._s3.get_object_legal_hold(Bucket=self.bucket, Key=self.key(name))
            out["legal_hold"] = hold.get("LegalHold", {}).get("Status") == "ON"
        except self._client_error as e:
            if e.response.get("Error", {}).get("Code") in unset:
                out["legal_hold"] = False
        except self._errors:
            pass
        return out

    def reachable(self) -> bool:
        try:
            self.check()
        except StoreError:
            return False
        return True

    def create_bucket(self, region: str = "") -> bool:
        """Make the bucket, with Object Lock (and so versioning) when this store locks objects:
        a bucket gets Object Lock only when it is made. False: it was there already."""
        extra: dict[str, Any] = {}
        if self.lock_mode:
            extra["ObjectLockEnabledForBucket"] = True
        if region and region != "us-east-1":  # AWS refuses the constraint for its default region
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._s3.create_bucket(Bucket=self.bucket, **extra)
        except self._client_error as e:
            if e.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return False
            raise self._fail(e) from None
        except self._errors as e:
            raise self._fail(e) from None
        return True

    def bucket_lock(self) -> bool:
        """Whether the bucket has Object Lock enabled."""
        try:
            conf = self._s3.get_object_lock_configuration(Bucket=self.bucket)
        except self._client_error as e:
            if e.response.get("Error", {}).get("Code") in (
                "ObjectLockConfigurationNotFoundError",
                "NoSuchObjectLockConfiguration",
            ):
                return False
            raise self._fail(e) from None
        except self._errors as e:
            raise self._fail(e) from None
        return conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def check(self) -> None:
        """StoreError saying why the bucket cannot be used now (unreachable, refused, missing)."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except self._errors as e:
            raise self._fail(e) from None


class TieredStore(Store):
    """The spool for what is still local (being written, or waiting for its upload), the
    bucket for everything else."""

    def __init__(self, spool: LocalSpool, remote: S3Store) -> None:
        self.spool = spool
        self.remote = remote

    def create(self) -> ObjectWriter:
        return self.spool.create()

    def open(self, name: str) -> BinaryIO:
        try:
            return self.spool.open(name)
        except ObjectNotFound:
            return self.remote.open(name)

    def open_from(self, name: str, start: int) -> BinaryIO:
        try:
            return self.spool.open_from(name, start)
        except ObjectNotFound:
            return self.remote.open_from(name, start)

    def delete(self, name: str) -> None:
        try:
            self.spool.delete(name)
        except ObjectNotFound:
            self.remote.delete(name)  # ObjectNotFound when neither has it
            return
        # It was still local, so it was not uploaded, or its upload is finishing right now (the
        # uploader deletes the uploaded copy again when it finds the row deleted). A store out of
        # reach does not stop a withdrawal or an erasure of what was only local.
        try:
            self.remote.delete(name)
        except ObjectNotFound:
            pass
        except StoreError as e:
            log.warning("%s deleted from the spool; the object store did not answer: %s", name, e)

    def size(self, name: str) -> int:
        try:
            return self.spool.size(name)
        except ObjectNotFound:
            return self.remote.size(name)

    def age_s(self, name: str) -> float:
        try:
            return self.spool.age_s(name)
        except ObjectNotFound:
            return self.remote.age_s(name)

    def local_names(self) -> Iterator[str]:
        return self.spool.names()

    def names(self) -> Iterator[str]:
        seen = set()
        for name in self.spool.names():
            seen.add(name)
            yield name
        for name in self.remote.names():
            if name not in seen:
                yield name


def retain_until(started_at: str, retention_days: int) -> datetime:
    from datetime import timedelta

    return datetime.fromisoformat(started_at.replace("Z", "+00:00")).astimezone(UTC) + timedelta(
        days=retention_days
    )
