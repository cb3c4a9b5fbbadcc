"""CDS Hooks: the card of one estimate, and the response models of the CDS routes.

Optional fields are omitted, never null (the spec forbids null and empty values): every reply
is these models dumped with ``exclude_none``. A card's ``uuid`` is the estimate's prediction
id, so feedback on the card names the audited estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sepsis_api.ml.scoring import ServedModel
from sepsis_api.schema import BY_CODE, NOT_A_DEVICE

Indicator = Literal["info", "warning", "critical"]
INDICATOR: dict[str, Indicator] = {"low": "info", "moderate": "warning", "high": "critical"}
SUMMARY_MAX = 139  # "<140-character summary"
TOP_REASONS = 3
OVERRIDE_SYSTEM = "urn:sepsis-risk-api:cds-hooks:override-reason"
OVERRIDE_REASONS = (
    ("clinical-assessment", "My clinical assessment differs"),
    ("data-out-of-date", "The measurements are out of date or wrong"),
    ("not-relevant", "Not relevant for this patient now"),
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Coding(_Out):
    system: str
    code: str
    display: str | None = None


class Source(_Out):
    label: str
    url: str | None = Field(default=None, description="The model card.")


class Link(_Out):
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"


class Card(_Out):
    uuid: str | None = Field(default=None, description="The estimate's prediction id.")
    summary: str = Field(max_length=SUMMARY_MAX)
    detail: str | None = Field(default=None, description="GitHub-flavoured Markdown.")
    indicator: Indicator
    source: Source
    overrideReasons: list[Coding] | None = None  # the spec's spelling
    links: list[Link] | None = None


class CardsResponse(_Out):
    cards: list[Card]


class ServiceDescription(_Out):
    hook: str
    title: str | None = None
    description: str
    id: str
    prefetch: dict[str, str] | None = None


class DiscoveryResponse(_Out):
    services: list[ServiceDescription]


class FeedbackResponse(_Out):
    received: int = Field(description="Feedback items in the call.")
    stored: int = Field(description="Items stored now; the rest had been stored before.")


def dump(model: BaseModel) -> dict[str, Any]:
    """A reply body: optional fields left out, never null."""
    return model.model_dump(mode="json", exclude_none=True)


def _pct(p: float) -> str:
    return "<1%" if p < 0.005 else f"{100 * p:.0f}%"


def _value(code: str, value: float | None) -> str:
    if value is None:
        return "not measured"
    unit = BY_CODE[code].unit
    return f"{value:g}" + (f" {unit}" if unit else "")


def _reasons(contributions: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for c in contributions[:TOP_REASONS]:
        effect = c["contribution"]
        way = "raises" if effect > 0 else "lowers" if effect < 0 else "does not change"
        lines.append(
            f"- {BY_CODE[c['feature']].description} ({c['feature']}) = "
            f"{_value(c['feature'], c['value'])}: {way} the risk ({effect:+.2f} log-odds)"
        )
    return lines


def _code(text: str) -> str:
    """Text from the EHR shown verbatim in Markdown (no markup of its own)."""
    return "`" + text.replace("`", "'") + "`"


def card(
    row: dict[str, Any],
    model: ServedModel,
    *,
    basis: Sequence[str],
    model_card_url: str,
    record_url: str | None,
) -> Card:
    """The card of one estimate (``row`` as Service.predict_one returns it, with reasons)."""
    p, band = row["probability"], row["risk_band"]
    summary = f"Sepsis risk {_pct(p)}: {band} band (alert from {_pct(model.threshold)})"
    named = f"{summary} · {model.display_name}"
    bands = model.bands
    lines = [
        f"**Estimated sepsis risk: {100 * p:.1f}%**, **{band}** band "
        f"(low below {_pct(bands.moderate_from)}, high from {_pct(bands.high_from)}).",
        "",
        f"The model's alert threshold is {100 * model.threshold:.1f}%: this estimate is "
        f"**{row['label']}**.",
        "",
        "**Top reasons** (change in log-odds against the value left out as not measured):",
        *_reasons(row["contributions"] or []),
        "",
        f"Model: {model.display_name}, version {_code(model.version)}.",
    ]
    if basis:
        lines.append("Based on: " + ", ".join(_code(b) for b in basis) + ".")
    lines += ["", f"_{NOT_A_DEVICE}_"]
    return Card(
        uuid=row["id"],
        summary=named if len(named) <= SUMMARY_MAX else summary,
        detail="\n".join(lines),
        indicator=INDICATOR[band],
        source=Source(label=f"Sepsis Risk API · {model.display_name}", url=model_card_url),
        overrideReasons=[
            Coding(system=OVERRIDE_SYSTEM, code=code, display=display)
            for code, display in OVERRIDE_REASONS
        ],
        links=(
            [Link(label="Open this estimate in the Sepsis Risk web UI", url=record_url)]
            if record_url
            else None
        ),
    )
