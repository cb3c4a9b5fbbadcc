"""An S3-compatible server for tests: moto's server mode, a real process on a free loopback port.

Use the ``s3`` fixture (registered for every test by ``pytest_plugins`` in tests/conftest.py):

    def test_x(s3: S3Server, tmp_path):
        bucket = s3.new_bucket()                 # a fresh, empty bucket for this test
        s3.put(bucket, "in.csv", data)           # and s3.get / s3.keys to look at it
        run(..., env=s3.env)                     # a child process: endpoint and credentials
        with s3.environment(): ...               # this process: the same, as os.environ

``s3.env`` holds the usual AWS variables (``AWS_ENDPOINT_URL``, keys, region) that pyarrow's
S3 filesystem and boto3 read, so the code under test needs no test switch. One server serves
the whole session; each test takes buckets of its own. Any engine (local, Spark, Dask) can be
pointed at it the same way.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from server import ChildProcess

_BUCKETS = itertools.count(1)


class S3Server(ChildProcess):
    """``moto_server`` on 127.0.0.1; ``env`` is what a client needs to reach it."""

    name = "moto"
    health = "/"

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir, dict(os.environ))
        self.env = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "test-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.env_all = {**os.environ, **self.env}

    def command(self) -> list[str]:
        moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        if moto is None:
            raise RuntimeError("moto_server not found: pip install -e '.[dev]' (moto[server])")
        return [moto, "-H", "127.0.0.1", "-p", str(self.port)]

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )

    def new_bucket(self) -> str:
        name = f"test-{next(_BUCKETS)}"
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> str:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def get(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    @contextmanager
    def environment(self) -> Iterator[None]:
        """This process's environment pointed at the server, restored afterwards."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("moto")) as server:
        yield server
