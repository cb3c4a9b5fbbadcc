"""``sepsis-api evaluate``: a labelled file scored with a version (``monitoring.local``), the
performance figures of ``GET /v1/monitoring/performance`` (``monitoring.performance``) in
evaluation.json and a report in evaluation.html (``ml.validation_report``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from sepsis_api.cli import RegistryOpt, _fail, _registry, console, out
from sepsis_api.cli.predict import CHUNK_ROWS
from sepsis_api.config import get_settings


def _write_all(directory: Path, files: dict[str, bytes]) -> None:
    """Each file to a temporary name beside it first; then all renamed into place (a rename
    is atomic), so a failure leaves the directory as it was."""
    directory.mkdir(parents=True, exist_ok=True)
    temps: dict[str, Path] = {}
    try:
        for name, data in files.items():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
            temps[name] = Path(tmp_name)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            temps[name].chmod(0o644)
        for name, path in temps.items():
            path.replace(directory / name)
    finally:
        for path in temps.values():
            path.unlink(missing_ok=True)


def evaluate(
    data: Annotated[
        Path, typer.Option(help="Labelled CSV or Parquet (the data set's format, Sepssis column).")
    ],
    output: Annotated[Path, typer.Option(help="Directory for evaluation.json and .html.")],
    model: Annotated[
        str | None,
        typer.Option(help="Model name, version, or VERSION/NAME (default: the served default)."),
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows read at a time.")] = CHUNK_ROWS,
    registry: RegistryOpt = None,
) -> None:
    """Validate a model on local labelled data before it goes live."""
    from datetime import UTC, datetime

    import orjson
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from sepsis_api.ml.data import DataError
    from sepsis_api.ml.scoring import UnknownModel, open_model
    from sepsis_api.ml.store import ArtifactError, sha256_of
    from sepsis_api.monitoring import curves
    from sepsis_api.monitoring.local import score_labelled
    from sepsis_api.monitoring.performance import report
    from sepsis_api.schema import NOT_A_DEVICE

    try:
        from sepsis_api.ml.validation_report import render
    except ImportError as e:  # the serving install leaves the training extra out
        raise _fail(
            f"the HTML report needs the train extra ({e.name} is not installed): "
            "pip install 'sepsis-api[train]'"
        ) from None
    reg = _registry(registry)
    try:
        served = open_model(model, reg, get_settings().model_version)
        card = reg.cards()[served.version]
    except (ArtifactError, UnknownModel) as e:
        raise _fail(str(e)) from None
    columns = (
        TextColumn("scoring {task.fields[file]}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("score", total=None, file=data.name)
            labelled = score_labelled(
                data, served, chunk_rows=chunk_rows,
                progress=lambda rows: bar.update(task, completed=rows),
            )  # fmt: skip
    except DataError as e:
        raise _fail(f"{e}; nothing was written") from None
    result = {
        "model_version": served.version,
        "model": served.name,
        "threshold": served.threshold,
        "data": {"file": data.name, "sha256": sha256_of(data), "rows": len(labelled)},
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **report(
            labelled,
            model_card=card["models"][served.name],
            validation=card.get("validation"),
        ),
    }
    y, p = labelled.outcome, labelled.probability
    html = render(result, curves.roc(y, p), curves.reliability(y, p))
    try:
        _write_all(
            output,
            {
                "evaluation.json": orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n",
                "evaluation.html": html.encode("utf-8"),
            },
        )
    except OSError as e:
        raise _fail(f"{output}: cannot write: {e.strerror or e}; nothing was written") from None
    auc = result["roc_auc"]
    out.print(
        f"{served.name} {served.version} on {len(labelled):,} rows ({result['events']} events): "
        f"ROC AUC {auc['estimate']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}], "
        f"status {result['status']}"
        if auc["estimate"] is not None
        else f"{served.name} {served.version} on {len(labelled):,} rows: status {result['status']}"
    )
    out.print(f"written {output / 'evaluation.json'} and {output / 'evaluation.html'}")
    console.print(NOT_A_DEVICE, style="dim")
