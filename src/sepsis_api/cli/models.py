"""``sepsis-api models list | show | activate``: versions in the registry (``ml.store``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sepsis_api.cli import RegistryOpt, _fail, _registry, out
from sepsis_api.config import get_settings

app: typer.Typer = typer.Typer(
    help="List and inspect trained model versions.", no_args_is_help=True
)


@app.command("list")
def list_versions(registry: RegistryOpt = None) -> None:
    """List the model versions and their default model."""
    from rich.table import Table

    from sepsis_api.ml.store import ArtifactError

    reg = _registry(registry)
    try:
        cards = reg.cards()
        default = reg.default_version() if cards else None
    except ArtifactError as e:
        raise _fail(str(e)) from None
    paths = reg.version_dirs()
    table = Table()
    for col in ("version", "default model", "ROC AUC", "created", "path"):
        table.add_column(col)
    for version, card in cards.items():
        dm = card["default_model"]
        auc = card["models"][dm]["metrics"]["roc_auc"]["mean"]
        mark = " *" if version == default else ""
        table.add_row(version + mark, dm, f"{auc:.3f}", card["created_at"], str(paths[version]))
    out.print(table)
    out.print("* served by default")


@app.command("show")
def show(
    version: Annotated[str | None, typer.Argument(help="Version (default: served one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Verify a version's files and show its card."""
    from rich.table import Table

    from sepsis_api.ml.store import ArtifactError

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


@app.command("activate")
def activate(
    version: Annotated[str, typer.Argument(help="The version to serve.")],
    registry: RegistryOpt = None,
) -> None:
    """Make VERSION the served version: every running server switches within
    SEPSIS_API_MODEL_POLL_SECONDS, without dropping requests; new servers start on it."""
    from sepsis_api.db.audit import open_audit
    from sepsis_api.ml.store import ArtifactError

    try:
        mv = _registry(registry).open(version)  # verifies every file's hash first
    except ArtifactError as e:
        raise _fail(str(e)) from None
    settings = get_settings()
    open_audit(settings).set_active_version(mv.version, by="cli")
    out.print(
        f"active version is now {mv.version} (default model {mv.default_model}); "
        f"servers follow within {settings.model_poll_seconds:g} s"
    )
