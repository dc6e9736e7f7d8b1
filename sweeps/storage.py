"""Where a sweep's Ray Tune state lives: a local folder or `s3://bucket/prefix`.

    python sweeps/depth_width.py --storage s3://my-bucket/sweeps     # AWS: credentials from the environment
    AWS_ENDPOINT_URL=http://127.0.0.1:8333 python sweeps/...          # an S3-compatible store (SeaweedFS, MinIO)

Ray Tune (through pyarrow) writes the experiment state, results and checkpoints
to the URI itself; this module only checks, before anything is created, that an
S3 bucket can be reached, so a typo or missing credentials is a one-line error
instead of a traceback after the parent MLflow run exists. The endpoint comes
from `AWS_ENDPOINT_URL` (read by pyarrow, boto3 and MLflow alike);
`MLFLOW_S3_ENDPOINT_URL` overrides it for MLflow's artifact uploads only.
"""

from __future__ import annotations

import os


class StorageError(ValueError):
    """The storage URI cannot be used; the message says what to fix."""


def is_s3(uri: str | None) -> bool:
    return bool(uri) and uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def check_storage(uri: str | None) -> None:
    """Raise StorageError unless `uri` is a local path or a reachable S3 bucket (creates nothing)."""
    if not uri or "://" not in uri:
        return  # a local folder: created on use
    if not is_s3(uri):
        raise StorageError(f"--storage {uri}: only a local folder or s3://bucket/prefix is supported")
    bucket, _ = split_s3(uri)
    if not bucket:
        raise StorageError(f"--storage {uri}: no bucket; use s3://bucket/prefix")
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    where = f" at {endpoint}" if endpoint else ""
    # One short attempt: this is a check, not a transfer; an unreachable endpoint must fail in seconds.
    client = boto3.client("s3", endpoint_url=endpoint,
                          config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}))
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.NoCredentialsError:
        raise StorageError(f"--storage {uri}: no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                           f"AWS_SECRET_ACCESS_KEY, or use an instance profile)") from None
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        reason = {"404": "does not exist", "NoSuchBucket": "does not exist",
                  "403": "access denied (check the credentials and the bucket policy)"}.get(code, code)
        raise StorageError(f"--storage {uri}: bucket {bucket!r}{where} {reason}") from None
    except (botocore.exceptions.BotoCoreError, OSError) as e:
        raise StorageError(f"--storage {uri}: cannot reach S3{where} ({e})") from None
