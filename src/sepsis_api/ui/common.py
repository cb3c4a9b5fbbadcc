"""What every page shares: the API client, cached reads, number formats, bands and errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import altair as alt
import pandas as pd
import streamlit as st

from sepsis_api.config import get_settings
from sepsis_api.ui.client import (
    APIClient,
    APIError,
    APIUnreachable,
    Contribution,
    DriftReport,
    FeatureInfo,
    FeaturesInfo,
    ModelDetail,
    ModelsInfo,
    ModelSummary,
    PerformanceReport,
    Readiness,
)

T = TypeVar("T")

BANDS: dict[str, dict[str, str]] = {
    # colour name for Streamlit markdown, table background and text, and the words
    "low": {"color": "green", "bg": "#dcfae6", "fg": "#085d3a", "words": "Low risk"},
    "moderate": {"color": "orange", "bg": "#fef0c7", "fg": "#93370d", "words": "Moderate risk"},
    "high": {"color": "red", "bg": "#fee4e2", "fg": "#912018", "words": "High risk"},
}
RAISES, LOWERS = "Raises risk", "Lowers risk"
RAISE_COLOUR, LOWER_COLOUR = "#c4320a", "#1570ef"
METRIC_NAMES = {
    "roc_auc": "ROC AUC",
    "average_precision": "Average precision",
    "brier": "Brier score",
}
OPERATING_NAMES = {
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "alert_rate": "Alert rate",
}


# -- connection ---------------------------------------------------------------------------------


def api_target() -> tuple[str, str | None]:
    """The API address and key from Settings (SEPSIS_API_UI_API_URL, _KEY or _KEY_FILE); never
    the page."""
    settings = get_settings()
    return settings.ui_api_url.rstrip("/"), settings.ui_key()


@st.cache_resource(show_spinner=False, max_entries=8)
def _client(url: str, key: str | None) -> APIClient:
    return APIClient(url, key)


def client() -> APIClient:
    """The shared client for the configured address and key (one connection pool each)."""
    return _client(*api_target())


@st.cache_data(ttl=300, show_spinner=False, max_entries=8)
def _features(url: str, key: str | None) -> FeaturesInfo:
    return _client(url, key).features()


@st.cache_data(ttl=30, show_spinner=False, max_entries=8)
def _models(url: str, key: str | None) -> ModelsInfo:
    return _client(url, key).models()


@st.cache_data(ttl=300, show_spinner=False, max_entries=16)
def _model(url: str, key: str | None, name: str) -> ModelDetail:
    return _client(url, key).model(name)


@st.cache_data(ttl=3600, show_spinner=False, max_entries=64)
def _plot(url: str, key: str | None, name: str) -> bytes:
    return _client(url, key).model_plot(name)


# Monitoring reads: a short time to live, so the page is current and a rerun (a widget
# change) does not repeat a span's calls. Parameters go in as sorted pairs (hashable).
@st.cache_data(ttl=30, show_spinner=False, max_entries=128)
def _drift(url: str, key: str | None, params: tuple[tuple[str, str | None], ...]) -> DriftReport:
    return _client(url, key).drift(dict(params))


@st.cache_data(ttl=30, show_spinner=False, max_entries=32)
def _performance(
    url: str, key: str | None, params: tuple[tuple[str, str | None], ...]
) -> PerformanceReport:
    return _client(url, key).performance(dict(params))


def drift(params: dict[str, str | None]) -> DriftReport:
    return _drift(*api_target(), tuple(sorted(params.items())))


def performance(params: dict[str, str | None]) -> PerformanceReport:
    return _performance(*api_target(), tuple(sorted(params.items())))


def features() -> FeaturesInfo:
    return _features(*api_target())


def models() -> ModelsInfo:
    return _models(*api_target())


def model(name: str) -> ModelDetail:
    return _model(*api_target(), name)


def plot(name: str) -> bytes:
    return _plot(*api_target(), name)


def readiness() -> Readiness:
    """Not cached: the banner must say what is true now."""
    return client().readiness()


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args)``; on an API problem, show it on the page and stop the page there."""
    try:
        return fn(*args, **kwargs)
    except (APIError, APIUnreachable) as e:
        show_problem(e)
        st.stop()
        raise AssertionError("unreachable") from None  # st.stop() raises; for type checkers


def show_problem(e: APIError | APIUnreachable, *, fields: Sequence[FeatureInfo] = ()) -> None:
    """A readable message for an API failure (no raw JSON)."""
    url, _ = api_target()
    if isinstance(e, APIUnreachable):
        st.error(
            f"**The API cannot be reached at {url}** ({e.reason or 'no answer'}). "
            "Start it with `sepsis-api serve` (or `make run`), or point the UI at it with "
            "`SEPSIS_API_UI_API_URL`.",
            icon=":material/cloud_off:",
        )
        return
    if e.refused_key:
        st.error(
            f"**The API at {url} refused this UI's API key.** The UI sends the key from its "
            "own settings (`SEPSIS_API_UI_API_KEY`); set it to one of the keys the API "
            "accepts (`SEPSIS_API_KEYS` on the server) and restart the UI.",
            icon=":material/key_off:",
        )
        return
    if e.status == 503:
        st.error(f"**The API is not ready:** {e.detail}", icon=":material/hourglass_empty:")
        return
    names = {f["code"]: f for f in fields} | {f["name"]: f for f in fields}
    lines = []
    for err in e.errors[:20]:
        field = err.get("field")
        feature = names.get(field) if field else None
        where = feature_label(feature) if feature else (field or "")
        if err.get("row") is not None:
            where = f"row {err['row']}" + (f", {where}" if where else "")
        lines.append(
            f"- **{where or 'request'}**: {err.get('message', '')}"
            + (f" — expected {err['expected']}" if err.get("expected") else "")
        )
    more = f"\n\n…and {len(e.errors) - 20} more." if len(e.errors) > 20 else ""
    body = "\n".join(lines)
    st.error(
        f"**The API could not do this ({e.status}):** {e.detail}"
        + (f"\n\n{body}" if body else "")
        + more,
        icon=":material/error:",
    )


# -- formats ------------------------------------------------------------------------------------


def pct(p: float | None, digits: int = 1) -> str:
    """0.6734 -> '67.3%'."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{100 * p:.{digits}f}%"


def decimals(f: FeatureInfo) -> int:
    """Digits after the point for a feature's values (0 for integer-valued features)."""
    if f["choices"] is not None or f["integer"]:
        return 0
    return 3 if f["maximum"] <= 10 else 1


def number(x: float, digits: int) -> str:
    """A value with at most ``digits`` decimals and no trailing zeros: 148.0 -> '148'."""
    s = f"{x:.{digits}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def feature_label(f: FeatureInfo) -> str:
    """'Blood work result 1 (PL)'; just 'Age' where the description is the code."""
    desc, code = f["description"], f["code"]
    return desc if desc.lower() == code.lower() else f"{desc} ({code})"


def value_text(f: FeatureInfo, value: float | None) -> str:
    """A patient's value with its unit, or 'not measured'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    if f["zero_means_missing"] and value == 0:  # the API's rule: 0 here means not measured
        return "not measured (0)"
    if f["choices"] is not None and f["code"] == "Insurance":
        return "yes" if value else "no"
    text = number(float(value), decimals(f))
    return f"{text} {f['unit']}" if f["unit"] else text


def valid_range(f: FeatureInfo) -> str:
    if f["choices"] is not None:
        return " or ".join(str(c) for c in f["choices"])
    d = decimals(f)
    return f"{number(f['minimum'], d)} – {number(f['maximum'], d)}"


def band_markdown(band: str, *, big: bool = False) -> str:
    """Band as coloured words, e.g. ':red-background[**High risk**]' (never colour alone)."""
    b = BANDS.get(band, {"color": "gray", "words": band})
    icon = {
        "low": ":material/check_circle:",
        "moderate": ":material/error:",
        "high": ":material/warning:",
    }.get(band, "")
    text = f":{b['color']}-background[{icon} **{b['words']}**]"
    return f"### {text}" if big else text


def band_cell_style(band: object) -> str:
    """CSS for a table cell holding a band ('high') or its words ('High risk')."""
    b = BANDS.get(str(band).split(" ")[0].lower())
    return f"background-color: {b['bg']}; color: {b['fg']}; font-weight: 600" if b else ""


def bands_text(m: ModelSummary) -> str:
    """'low < 15.1% · moderate 15.1–53.5% · high ≥ 53.5%' for one model."""
    lo, hi = m["risk_bands"]["moderate_from"], m["risk_bands"]["high_from"]
    return f"low below {pct(lo)} · moderate {pct(lo)}–{pct(hi)} · high from {pct(hi)}"


def interval(d: dict[str, float], *, percent: bool = False) -> str:
    """{'mean'|'value', 'low', 'high'} -> '0.828 (0.750–0.902)' or '80.3% (75.0–85.4%)'."""
    point = d.get("mean", d.get("value", float("nan")))
    if percent:
        return f"{pct(point)} ({100 * d['low']:.1f}–{pct(d['high'])})"
    return f"{point:.3f} ({d['low']:.3f}–{d['high']:.3f})"


def sentence(text: str) -> str:
    """First letter capitalised, full stop at the end (for rules quoted from the card)."""
    text = text.strip()
    if not text:
        return ""
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def by_code(info: FeaturesInfo) -> dict[str, FeatureInfo]:
    return {f["code"]: f for f in info["features"]}


# -- charts -------------------------------------------------------------------------------------


def contribution_chart(
    contributions: list[Contribution], feats: dict[str, FeatureInfo], *, compact: bool = False
) -> alt.LayerChart | alt.FacetChart:
    """Horizontal bars: which values pushed this patient's risk up (right) or down (left).

    ``compact`` labels the bars by code only ('PL = 148 mu U/ml'), for narrow columns.
    """
    rows = []
    for c in contributions:
        f = feats.get(c["feature"])
        value = value_text(f, c["value"]) if f else str(c["value"])
        name = c["feature"] if compact or not f else feature_label(f)
        rows.append(
            {
                "feature": f"{name} = {value}",
                "contribution": c["contribution"],
                "effect": RAISES if c["contribution"] >= 0 else LOWERS,
                "log_odds": f"{c['contribution']:+.2f}",
            }
        )
    frame = pd.DataFrame(rows)
    order = frame.sort_values("contribution", ascending=False)["feature"].tolist()
    bars = (
        alt.Chart(frame)
        .mark_bar(cornerRadiusEnd=3, height={"band": 0.7})
        .encode(
            x=alt.X(
                "contribution:Q",
                title=(
                    "Log-odds change (← lowers · raises →)"
                    if compact
                    else "Change in log-odds of sepsis risk  (← lowers · raises →)"
                ),
                axis=alt.Axis(grid=True, tickCount=6),
            ),
            y=alt.Y(
                "feature:N",
                sort=order,
                title=None,
                axis=alt.Axis(labelLimit=360, labelFontSize=13, labelOverlap=False),
            ),
            color=alt.Color(
                "effect:N",
                title=None,
                scale=alt.Scale(domain=[RAISES, LOWERS], range=[RAISE_COLOUR, LOWER_COLOUR]),
                legend=alt.Legend(
                    orient="bottom", direction="horizontal", labelLimit=0, symbolType="square"
                ),
            ),
            tooltip=[
                alt.Tooltip("feature:N", title="Value"),
                alt.Tooltip("log_odds:N", title="Log-odds"),
                alt.Tooltip("effect:N", title="Effect"),
            ],
        )
    )
    zero = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(color="#475467").encode(x="x:Q")
    return alt.layer(bars, zero).properties(height=alt.Step(28))


def sidebar() -> None:
    """Where the UI points, whether the API answers, and the disclaimer, on every page."""
    url, key = api_target()
    with st.sidebar:
        st.markdown("### :material/monitor_heart: Sepsis Risk")
        try:
            ready = readiness()
            ok = ready.get("status") == "ready"
            status = (
                ("ready, model " + ready.get("model_version", "?"))
                if ok
                else ("not ready: " + ready.get("reason", "unknown"))
            )
            st.caption(f"{':green' if ok else ':orange'}[●] API {url} — {status}")
        except (APIError, APIUnreachable):
            st.caption(f":red[●] API {url} — not reachable")
        if key:
            st.caption(":material/key: Sends the API key from the UI's settings.")
        st.caption("Research and teaching demonstration — **not a validated clinical device**.")


def day_bounds(days: tuple[date, ...]) -> tuple[str | None, str | None]:
    """A picked date range (UTC days, end inclusive) -> the API's since/until."""
    if not days:
        return None, None
    start = datetime.combine(days[0], time.min, tzinfo=UTC)
    if days[-1] == date.max:  # no day after it: everything from the start
        return start.isoformat(), None
    end = datetime.combine(days[-1], time.min, tzinfo=UTC) + timedelta(days=1)
    return start.isoformat(), end.isoformat()
