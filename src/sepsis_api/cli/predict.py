"""``sepsis-api predict``: a file of patients scored offline (``batch.offline.score_file``)."""

from __future__ import annotations

from typing import Annotated

import typer

from sepsis_api.cli import RegistryOpt, _fail, _registry, console
from sepsis_api.config import get_settings

# The reader's chunk size (ml.data.DEFAULT_CHUNK_ROWS), spelled out so that --help needs no
# pandas; tests/cli/test_startup.py keeps the two equal.
CHUNK_ROWS = 100_000


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
) -> None:
    """Score a file of patients; the output is written whole or not at all."""
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from sepsis_api.batch import score_file
    from sepsis_api.ml.data import DataError
    from sepsis_api.ml.scoring import UnknownModel, open_model
    from sepsis_api.ml.store import ArtifactError
    from sepsis_api.schema import NOT_A_DEVICE

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
    if result.rejected_path is not None:
        console.print(f"{len(result.rejected)} invalid rows written to {result.rejected_path}")
    console.print(f"scored {result.scored:,} rows with {served.name} {served.version} -> {output}")
    console.print(NOT_A_DEVICE, style="dim")
