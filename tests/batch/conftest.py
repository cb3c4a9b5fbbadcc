"""Engines shared by the Spark and Dask tests, each started once per run (they cost seconds):
a Spark ``local[2]`` session and a Dask ``LocalCluster`` with two worker processes, both on
127.0.0.1. Small Spark file splits make even the test files span several partitions."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

SPARK_SPLIT_BYTES = 64 * 1024  # spark.sql.files.maxPartitionBytes: ~1,200 patients a partition


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        reason = "no Java 17 on PATH (scripts/ensure-test-tools.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from sepsis_api.batch.spark import local_session

    session = local_session("local[2]", app_name="sepsis-api-tests")
    session.conf.set("spark.sql.files.maxPartitionBytes", str(SPARK_SPLIT_BYTES))
    session.conf.set("spark.sql.files.openCostInBytes", "0")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster, timeout=60) as client,
    ):
        yield client
