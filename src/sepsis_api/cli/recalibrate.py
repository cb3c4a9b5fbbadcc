"""``sepsis-api recalibrate``: a version's models refitted to local outcomes
(``monitoring.calibration`` fits the maps, ``ml.recalibrate`` writes the version)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sepsis_api.cli import RegistryOpt, _fail, _registry, out


class Method(StrEnum):
    intercept = "intercept"
    logistic = "logistic"


def recalibrate(
    data: Annotated[Path, typer.Option(help="Labelled CSV or Parquet of the local population.")],
    parent: Annotated[str, typer.Option("--from", help="The version to recalibrate.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Registry directory to write into.")],
    method: Annotated[
        Method,
        typer.Option(help="intercept: recalibration-in-the-large; logistic: intercept and slope."),
    ] = Method.logistic,
    registry: RegistryOpt = None,
) -> None:
    """Write a new version: the same fitted models, a calibration map fitted on DATA, threshold
    and bands chosen again on DATA; its card names the parent, the method and DATA's SHA-256."""
    from rich.table import Table

    from sepsis_api.ml.data import DataError, load_training_data
    from sepsis_api.ml.scoring import Predictor, score
    from sepsis_api.ml.store import ArtifactError, Registry, sha256_of
    from sepsis_api.monitoring.calibration import NotEstimable, recalibration

    try:
        from sepsis_api.ml.recalibrate import Map, save_recalibrated
    except ImportError as e:  # the serving install leaves the training extra out
        raise _fail(
            f"recalibration needs the train extra ({e.name} is not installed): "
            "pip install 'sepsis-api[train]'"
        ) from None
    try:
        version = Registry([out_dir, *_registry(registry).roots]).open(parent)
        local = load_training_data(data)
    except (ArtifactError, DataError) as e:
        raise _fail(str(e)) from None
    assert local.y is not None  # load_training_data requires the label column
    maps = {}
    for name, model in Predictor(version).models.items():
        try:
            fit = recalibration(score(model, local.X).probability, local.y, method.value)
        except NotEstimable as e:
            raise _fail(f"{data}: cannot recalibrate {name}: {e}") from None
        a, b = fit.intercept.estimate, fit.slope.estimate
        assert a is not None and b is not None  # a fit that returns is finite
        maps[name] = Map(a, b, fit.slope.ci_low, fit.slope.ci_high)
    path = save_recalibrated(
        version,
        maps,
        local,
        method=method.value,
        data_file=data.name,
        data_sha256=sha256_of(data),
        root=out_dir,
    )
    table = Table(title=f"{method.value} recalibration of {parent} on {len(local)} rows")
    for col in ("model", "intercept", "slope", "threshold"):
        table.add_column(col)
    card = Registry([out_dir]).cards()[path.name]
    for name, m in maps.items():
        table.add_row(name, f"{m.intercept:.3f}", f"{m.slope:.3f}",
                      f"{card['models'][name]['threshold']:.3f}")  # fmt: skip
    out.print(table)
    out.print(f"version [bold]{path.name}[/] written to {path}")
