"""The ``sepsis-api`` command line: train, predict, models."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sepsis_api.config import get_settings
from sepsis_api.ml.data import DEFAULT_CHUNK_ROWS, DataError, RowError, iter_batches
from sepsis_api.ml.store import ArtifactError, Registry, registry_for
from sepsis_api.schema import NOT_A_DEVICE

app = typer.Typer(
    help="Sepsis Risk API: calibrated, explained sepsis-risk estimates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and inspect trained model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
db_app = typer.Typer(help="The audit database's schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True, soft_wrap=True)  # messages stay on one greppable line
# Tables stay unwrapped when piped to a file or another program.
out = Console(width=None if sys.stdout.isatty() else 200)

OUTPUT_COLUMNS = ("ID", "probability", "label", "risk_band", "model", "model_version")


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _registry(registry: Path | None) -> Registry:
    settings = get_settings()
    if registry is not None:
        return Registry([registry, *registry_for(settings).roots])
    return registry_for(settings)


RegistryOpt = Annotated[
    Path | None,
    typer.Option("--registry", help="Model directory to search first (default: settings)."),
]


# -- train -----------------------------------------------------------------------------------
@app.command()
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
    from sepsis_api.ml.publish import save_run
    from sepsis_api.ml.train import train as run_training

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            tasks: dict[str, int] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done)

            run = run_training(data, seed=seed, n_repeats=repeats, n_jobs=jobs, progress=report)
            progress.add_task("writing report and artifacts", total=None)
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
        fmt = lambda i: f"{i.mean:.3f} [{i.low:.3f}, {i.high:.3f}]"  # noqa: E731
        mark = " (default)" if name == run.default else ""
        table.add_row(
            r.display_name + mark,
            r.calibration,
            fmt(m["roc_auc"]),
            fmt(m["average_precision"]),
            fmt(m["brier"]),
            f"{r.threshold:.3f}",
        )
    out.print(table)
    out.print(f"version [bold]{run.version}[/] written to {path}")
    out.print(f"report: {path / 'report.html'}\nmodel card: {path / 'MODEL_CARD.md'}")


# -- predict ---------------------------------------------------------------------------------
@contextmanager
def _atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path beside ``final`` that replaces it only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _TableWriter:
    """Appends DataFrames to a CSV or Parquet file chunk by chunk."""

    def __init__(self, path: Path, parquet: bool) -> None:
        self.path, self.parquet, self._pq, self._first = path, parquet, None, True

    def write(self, frame: object) -> None:
        import pandas as pd

        assert isinstance(frame, pd.DataFrame)
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.path, table.schema)
            self._pq.write_table(table)
        else:
            frame.to_csv(
                self.path,
                mode="w" if self._first else "a",
                header=self._first,
                index=False,
                float_format="%.6f",
                lineterminator="\n",
            )
        self._first = False

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


@app.command()
def predict(
    input_path: Annotated[Path, typer.Option("--input", help="CSV or Parquet of patients.")],
    output: Annotated[Path, typer.Option(help="Where to write scores (.csv or .parquet).")],
    model: Annotated[
        str | None,
        typer.Option(help="Model name, version, or VERSION/NAME (default: the served default)."),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(help="Write invalid rows with their reason to OUTPUT.rejected.csv and go on."),
    ] = False,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = DEFAULT_CHUNK_ROWS,
    registry: RegistryOpt = None,
) -> None:
    """Score a file of patients; the output is written whole or not at all."""
    import numpy as np
    import pandas as pd

    from sepsis_api.ml.scoring import UnknownModel, open_model, score

    try:
        served = open_model(model, _registry(registry), get_settings().model_version)
    except (ArtifactError, UnknownModel) as e:
        raise _fail(str(e)) from None
    rejected: list[RowError] = []
    rejected_path = output.with_name(output.stem + ".rejected.csv")
    scored = 0
    columns = (
        TextColumn("scoring {task.fields[file]}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
    )
    try:
        with (
            _atomic_path(output) as tmp,
            Progress(*columns, console=console, transient=True) as progress,
        ):
            task = progress.add_task("score", total=None, file=input_path.name)
            writer = _TableWriter(tmp, _is_parquet(output))
            try:
                for batch in iter_batches(input_path, chunk_rows=chunk_rows):
                    if batch.errors and not skip_invalid:
                        raise DataError(f"{input_path}: {batch.errors[0]}")
                    rejected.extend(batch.errors)
                    scores = score(served, batch.X)
                    ids = [
                        i if i is not None else str(r)
                        for i, r in zip(batch.ids, batch.rows.tolist(), strict=True)
                    ]
                    writer.write(
                        pd.DataFrame(
                            {
                                "ID": ids,
                                "probability": scores.probability,
                                "label": scores.label,
                                "risk_band": scores.band,
                                "model": np.full(len(batch), served.name),
                                "model_version": np.full(len(batch), served.version),
                            },
                            columns=list(OUTPUT_COLUMNS),
                        )
                    )
                    scored += len(batch)
                    progress.update(task, completed=scored)
            finally:
                writer.close()
    except DataError as e:
        hint = " (use --skip-invalid to set invalid rows aside)" if not skip_invalid else ""
        raise _fail(f"{e}{hint}; nothing was written") from None
    if rejected:
        with _atomic_path(rejected_path) as tmp:
            pd.DataFrame(
                [
                    {"row": r.row, "column": r.column, "value": r.value, "reason": r.reason}
                    for r in rejected
                ]
            ).to_csv(tmp, index=False)
        console.print(f"{len(rejected)} invalid rows written to {rejected_path}")
    elif rejected_path.exists() and skip_invalid:
        rejected_path.unlink()
    console.print(f"scored {scored:,} rows with {served.name} {served.version} -> {output}")
    console.print(NOT_A_DEVICE, style="dim")


# -- models ----------------------------------------------------------------------------------
@models_app.command("list")
def models_list(registry: RegistryOpt = None) -> None:
    """List the model versions and their default model."""
    reg = _registry(registry)
    default = reg.default_version() if reg.versions() else None
    table = Table()
    for col in ("version", "default model", "ROC AUC", "created", "path"):
        table.add_column(col)
    for version, path in sorted(reg.version_dirs().items(), reverse=True):
        card = json.loads((path / "card.json").read_text(encoding="utf-8"))
        dm = card["default_model"]
        auc = card["models"][dm]["metrics"]["roc_auc"]["mean"]
        mark = " *" if version == default else ""
        table.add_row(version + mark, dm, f"{auc:.3f}", card["created_at"], str(path))
    out.print(table)
    out.print("* served by default")


@models_app.command("show")
def models_show(
    version: Annotated[str | None, typer.Argument(help="Version (default: served one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Verify a version's files and show its card."""
    try:
        mv = _registry(registry).open(version)
    except ArtifactError as e:
        raise _fail(str(e)) from None
    if as_json:
        out.print_json(json.dumps(mv.card))
        return
    out.print(f"[bold]{mv.version}[/]  {mv.path}  (all {len(mv.card['files'])} file hashes OK)")
    out.print(
        f"trained {mv.card['created_at']} on {mv.card['training_data']['file']} "
        f"({mv.card['training_data']['rows']} rows), seed {mv.card['seed']}"
    )
    table = Table()
    for col in (
        "model",
        "calibration",
        "ROC AUC",
        "Brier",
        "threshold",
        "sensitivity",
        "specificity",
        "bands (moderate / high from)",
    ):
        table.add_column(col)
    for name in mv.model_names:
        m = mv.model_card(name)
        op = m["operating_point"]
        mark = " (default)" if name == mv.default_model else ""
        table.add_row(
            name + mark,
            m["calibration"],
            f"{m['metrics']['roc_auc']['mean']:.3f}",
            f"{m['metrics']['brier']['mean']:.3f}",
            f"{m['threshold']:.3f}",
            f"{op['sensitivity']['value']:.2f}",
            f"{op['specificity']['value']:.2f}",
            f"{m['risk_bands']['moderate_from']:.3f} / {m['risk_bands']['high_from']:.3f}",
        )
    out.print(table)
    out.print(f"model card: {mv.path / 'MODEL_CARD.md'}")


@models_app.command("activate")
def models_activate(
    version: Annotated[str, typer.Argument(help="The version to serve.")],
    registry: RegistryOpt = None,
) -> None:
    """Make VERSION the served version: every running server switches within
    SEPSIS_API_MODEL_POLL_SECONDS, without dropping requests; new servers start on it."""
    try:
        mv = _registry(registry).open(version)  # verifies every file's hash first
    except ArtifactError as e:
        raise _fail(str(e)) from None
    from sepsis_api.db.audit import open_audit

    open_audit(get_settings()).set_active_version(mv.version, by="cli")
    out.print(
        f"active version is now {mv.version} (default model {mv.default_model}); "
        f"servers follow within {get_settings().model_poll_seconds:g} s"
    )


# -- serve -----------------------------------------------------------------------------------
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    insecure: Annotated[
        bool, typer.Option(help="Allow a non-loopback address without API keys.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "info",
    access_log: Annotated[
        bool | None, typer.Option(help="One JSON line a request on stdout (default: settings).")
    ] = None,
) -> None:
    """Start the HTTP API (uvicorn)."""
    import logging

    import uvicorn

    from sepsis_api.keys import parse_keys

    # CLI options become settings, so every worker process sees the same configuration.
    for name, value in (
        ("HOST", host),
        ("PORT", port),
        ("WORKERS", workers),
        ("ACCESS_LOG", access_log),
    ):
        if value is not None:
            os.environ[f"SEPSIS_API_{name}"] = str(value)
    get_settings.cache_clear()
    settings = get_settings()
    try:
        keys = parse_keys(settings.api_keys, settings.api_keys_file)
        parse_keys(settings.admin_keys, settings.admin_keys_file)
    except (OSError, ValueError) as e:
        raise _fail(f"API keys: {e}") from None
    if not keys:
        if settings.host not in LOOPBACK and not insecure:
            raise _fail(
                f"no API keys are configured, so the API would be open to anyone on "
                f"{settings.host}; set SEPSIS_API_KEYS (or SEPSIS_API_KEYS_FILE), bind "
                f"to 127.0.0.1, or pass --insecure"
            )
        console.print(
            f"[yellow]no API keys configured: authentication is off[/]"
            f"{'' if insecure else ' (listening on loopback only)'}"
        )
    else:
        console.print(f"API keys required ({len(keys)} configured)")
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if settings.workers > 1:
        _share_metrics_between_workers()
    console.print(f"Sepsis Risk API on http://{settings.host}:{settings.port} (docs at /docs)")
    uvicorn.run(
        "sepsis_api.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


def _share_metrics_between_workers() -> None:
    """Worker processes keep their Prometheus values in files in one folder (inherited through
    PROMETHEUS_MULTIPROC_DIR), so /metrics shows the whole server; values of an earlier run
    there are removed."""
    import tempfile

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder is None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sepsis-api-metrics-")
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink()


# -- ui and up -------------------------------------------------------------------------------
@app.command()
def ui(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
    api_url: Annotated[str | None, typer.Option(help="API address (default: settings).")] = None,
) -> None:
    """Start the web UI (Streamlit); it talks to the API at --api-url."""
    from sepsis_api.ui.launch import run_ui

    settings = get_settings()
    host, port = host or settings.ui_host, port or settings.ui_port
    url = api_url or settings.ui_api_url
    console.print(f"Sepsis Risk web UI on http://{host}:{port} (API at {url})")
    raise typer.Exit(run_ui(host, port, url, settings.ui_key()))


@app.command()
def up() -> None:
    """Start the API and the web UI together on loopback; Ctrl-C stops both."""
    import signal
    import subprocess
    import time

    from sepsis_api.ui.launch import ui_command, ui_env

    settings = get_settings()
    api_url = f"http://{settings.host}:{settings.port}"
    api = subprocess.Popen(
        [sys.executable, "-m", "sepsis_api.cli", "serve", "--log-level", "warning"]
    )
    web = subprocess.Popen(
        ui_command(settings.ui_host, settings.ui_port), env=ui_env(api_url, settings.ui_key())
    )
    console.print(
        f"API     http://{settings.host}:{settings.port}  (docs at /docs)\n"
        f"web UI  http://{settings.ui_host}:{settings.ui_port}\nCtrl-C stops both."
    )
    children = (api, web)
    try:
        while all(p.poll() is None for p in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in children:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in children:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    failed = [p.returncode for p in children if p.returncode not in (0, -signal.SIGINT, None)]
    raise typer.Exit(1 if failed else 0)


@app.command()
def config() -> None:
    """Print every setting as a Markdown table (environment variable, default, meaning)."""
    from sepsis_api.config import settings_table

    out.print(settings_table(), markup=False, highlight=False, soft_wrap=True)


# -- db ----------------------------------------------------------------------------------------
def _engine():
    from sepsis_api.db.session import make_engine

    return make_engine(get_settings().effective_database_url)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the audit database."""
    from sepsis_api.db import migrate

    engine = _engine()
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    out.print(
        f"audit database {engine.url.render_as_string(hide_password=True)}: "
        f"{before or 'empty'} -> {migrate.current_revision(engine)}"
    )


@db_app.command("current")
def db_current() -> None:
    """Show the audit database's schema revision and whether it is up to date."""
    from sepsis_api.db import migrate

    engine = _engine()
    current, head = migrate.current_revision(engine), migrate.head_revision(engine)
    state = "up to date" if current == head else "behind: run `sepsis-api db upgrade`"
    out.print(
        f"{engine.url.render_as_string(hide_password=True)}: revision "
        f"{current or 'none'} (this release: {head}) - {state}"
    )
    if current != head:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
