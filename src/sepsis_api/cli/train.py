"""``sepsis-api train``: a training run (``ml.train``) saved as a version (``ml.publish``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sepsis_api.cli import _fail, console, out


def train(
    data: Annotated[Path, typer.Option(help="Labelled training CSV or Parquet.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Registry directory to write into.")],
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same model.")] = 42,
    repeats: Annotated[int, typer.Option(help="Repeats of 5-fold cross-validation.")] = 5,
    jobs: Annotated[int, typer.Option(help="Worker processes (-1 = all cores).")] = -1,
    set_default: Annotated[
        bool, typer.Option(help="Make the new version the registry's default (writes OUT/DEFAULT).")
    ] = False,
) -> None:
    """Compare the candidate models, calibrate, choose threshold and bands, save a version."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    from sepsis_api.ml.data import DataError
    from sepsis_api.ml.store import Registry

    try:
        from sepsis_api.ml.publish import save_run
        from sepsis_api.ml.train import train as run_training
    except ImportError as e:  # the serving install leaves the training extra out
        raise _fail(
            f"training needs the train extra ({e.name} is not installed): "
            "pip install 'sepsis-api[train]'"
        ) from None

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
            tasks: dict[str, TaskID] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)

            run = run_training(data, seed=seed, n_repeats=repeats, n_jobs=jobs, progress=report)
            bar.add_task("writing report and artifacts", total=None)
            path = save_run(run, out_dir)
            if set_default:
                Registry([out_dir]).set_default(run.version, out_dir)
    except DataError as e:
        raise _fail(str(e)) from None

    table = Table(
        title=f"Cross-validation ({run.n_repeats}x{run.n_splits}-fold), "
        f"mean [95% interval of folds]"
    )
    for col in ("model", "calibration", "ROC AUC", "avg precision", "Brier", "threshold"):
        table.add_column(col)
    for name, r in run.candidates.items():
        m = r.metrics()
        table.add_row(
            r.display_name + (" (default)" if name == run.default else ""),
            r.calibration,
            *(
                f"{i.mean:.3f} [{i.low:.3f}, {i.high:.3f}]"
                for i in (m["roc_auc"], m["average_precision"], m["brier"])
            ),
            f"{r.threshold:.3f}",
        )
    out.print(table)
    out.print(f"version [bold]{run.version}[/] written to {path}")
    out.print(f"report: {path / 'report.html'}\nmodel card: {path / 'MODEL_CARD.md'}")
