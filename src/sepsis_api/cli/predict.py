"""``sepsis-api predict``: a file of patients scored offline (``batch.offline.score_file``)."""

from __future__ import annotations

import contextlib
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sepsis_api.cli import RegistryOpt, _fail, _registry, console
from sepsis_api.config import get_settings

# The reader's chunk size (ml.data.DEFAULT_CHUNK_ROWS), spelled out so that --help needs no
# pandas; tests/cli/test_startup.py keeps the two equal.
CHUNK_ROWS = 25_000

if TYPE_CHECKING:
    from sepsis_api.batch import OfflineResult


class Engine(StrEnum):
    local = "local"
    spark = "spark"
    dask = "dask"


def predict(
    input_path: Annotated[
        str, typer.Option("--input", help="CSV or Parquet of patients: a path or s3://BUCKET/KEY.")
    ],
    output: Annotated[
        str, typer.Option(help="Where to write scores (.csv or .parquet): a path or s3:// URL.")
    ],
    model: Annotated[
        str | None,
        typer.Option(help="Model name, version, or VERSION/NAME (default: the served default)."),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(help="Write invalid rows with their reason to OUTPUT.rejected.csv and go on."),
    ] = False,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = CHUNK_ROWS,
    registry: RegistryOpt = None,
    engine: Annotated[
        Engine,
        typer.Option(help="local (this process), spark or dask (their extras installed)."),
    ] = Engine.local,
    master: Annotated[
        str, typer.Option(help="Spark master URL, e.g. local[2] (--engine spark).")
    ] = "local[2]",
    scheduler: Annotated[
        str,
        typer.Option(
            help="Dask scheduler address, or local: a LocalCluster of 2 worker processes "
            "(--engine dask)."
        ),
    ] = "local",
) -> None:
    """Score a file of patients; the output is written whole or not at all."""
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from sepsis_api.batch import score_file
    from sepsis_api.ml.data import DataError
    from sepsis_api.ml.scoring import UnknownModel, open_model
    from sepsis_api.ml.store import ArtifactError

    if engine is not Engine.local:
        return _distributed(
            engine, input_path, output, model, skip_invalid, registry, master, scheduler
        )
    _bounded_memory_pool()
    try:
        served = open_model(model, _registry(registry), get_settings().model_version)
    except (ArtifactError, UnknownModel) as e:
        raise _fail(str(e)) from None
    columns = (
        TextColumn("scoring {task.fields[file]}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("score", total=None, file=input_path.rsplit("/", 1)[-1])
            result = score_file(
                input_path,
                output,
                served,
                skip_invalid=skip_invalid,
                chunk_rows=chunk_rows,
                progress=lambda rows: bar.update(task, completed=rows),
            )
    except DataError as e:
        hint = "" if skip_invalid else " (use --skip-invalid to set invalid rows aside)"
        raise _fail(f"{e}{hint}; nothing was written") from None
    except OSError as e:
        raise _fail(f"{output}: cannot write: {e.strerror or e}; nothing was written") from None
    _report(result, served.name, served.version, output)


def _bounded_memory_pool() -> None:
    """Arrow's allocator for this process: jemalloc where pyarrow has it. Its default,
    mimalloc, keeps the pages of freed chunks in each thread's heap (reader, scorer, writer):
    30 to 50 MB more peak memory on 10 M rows, for the same speed."""
    import pyarrow as pa

    with contextlib.suppress(NotImplementedError):  # built without jemalloc (Windows): as is
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def _report(result: OfflineResult, name: str, version: str, output: str) -> None:
    from sepsis_api.schema import NOT_A_DEVICE

    if result.rejected_path is not None:
        console.print(f"{len(result.rejected)} invalid rows written to {result.rejected_path}")
    console.print(f"scored {result.scored:,} rows with {name} {version} -> {output}")
    console.print(NOT_A_DEVICE, style="dim")


def _distributed(
    engine: Engine,
    input_path: str,
    output: str,
    model: str | None,
    skip_invalid: bool,
    registry: Path | None,
    master: str,
    scheduler: str,
) -> None:
    """--engine spark | dask: the same contract as the local engine, another engine's tasks."""
    import shutil

    from sepsis_api.batch.bundle import bundle_for
    from sepsis_api.ml.data import DataError
    from sepsis_api.ml.scoring import UnknownModel
    from sepsis_api.ml.store import ArtifactError

    extra = {Engine.spark: ("pyspark", "py4j"), Engine.dask: ("dask", "distributed")}[engine]
    try:
        for module in extra:
            __import__(module)
    except ImportError:
        raise _fail(
            f"--engine {engine.value} needs the {engine.value} extra: "
            f"pip install 'sepsis-api[{engine.value}]'"
        ) from None
    if engine is Engine.spark and shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        raise _fail("--engine spark needs Java 17 or later (java on PATH or JAVA_HOME)")
    try:
        bundle = bundle_for(model, _registry(registry), get_settings().model_version)
    except (ArtifactError, UnknownModel) as e:
        raise _fail(str(e)) from None
    console.print(f"scoring {input_path.rsplit('/', 1)[-1]} with {engine.value}", style="dim")
    try:
        if engine is Engine.spark:
            from sepsis_api.batch.spark import score_file as spark_score_file

            result = spark_score_file(
                input_path, output, bundle, master=master, skip_invalid=skip_invalid
            )
        else:
            from sepsis_api.batch.dask import score_file as dask_score_file

            result = dask_score_file(
                input_path, output, bundle, scheduler=scheduler, skip_invalid=skip_invalid
            )
    except DataError as e:
        hint = "" if skip_invalid else " (use --skip-invalid to set invalid rows aside)"
        raise _fail(f"{e}{hint}; nothing was written") from None
    except OSError as e:
        raise _fail(f"{output}: cannot write: {e.strerror or e}; nothing was written") from None
    except Exception as e:  # a failed Spark or Dask job (unreadable input...): its own message
        raise _fail(
            f"{input_path}: the {engine.value} job failed: {_job_error(e)}; nothing was written"
        ) from None
    _report(result, bundle.model, bundle.version, output)


def _job_error(e: Exception) -> str:
    """The line of an engine's error that says what went wrong: the last line of a Python
    traceback relayed from a worker, else the first line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return lines[-1] if any(line.startswith("Traceback") for line in lines) else lines[0]
