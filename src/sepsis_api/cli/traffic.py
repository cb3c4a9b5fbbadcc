"""``sepsis-api traffic``: realistic traffic for a running server, to watch monitoring work.

Patients are resampled (with replacement, seeded) from a data file, optionally shifted
(``--shift PL=+30`` adds 30 to every measured PL), and sent as batches to
``POST /v1/predict/batch``. With ``--outcomes-from MODEL_REF`` each estimate then gets an
outcome drawn from that model's probability for the (shifted) patient, recorded through
``POST /v1/outcomes``. Bounded in count and in time; a non-loopback URL is refused unless
``--allow-remote`` is given.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from sepsis_api.cli import _fail, console, out
from sepsis_api.schema import FEATURES, LABEL_NEGATIVE, LABEL_POSITIVE, feature_for

if TYPE_CHECKING:
    import numpy as np

MAX_COUNT = 1_000_000
SHIFT_EXPECTED = "CODE=+N or CODE=-N, e.g. PL=+30, with CODE one of " + ", ".join(
    f.code for f in FEATURES
)


@dataclass(frozen=True)
class Shift:
    code: str
    index: int
    delta: float


def parse_shift(text: str) -> Shift:
    code, sep, amount = text.partition("=")
    feature = feature_for(code.strip())
    try:
        delta = float(amount)
    except ValueError:
        delta = math.nan
    if not sep or feature is None or not math.isfinite(delta):
        raise ValueError(f"--shift {text!r}: expected {SHIFT_EXPECTED}")
    return Shift(feature.code, FEATURES.index(feature), delta)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shifted(X: np.ndarray, shifts: list[Shift]) -> np.ndarray:
    """``X`` with each shift added to the measured values of its feature, kept within the
    feature's valid range (a value that is not measured stays not measured)."""
    import numpy as np

    X = np.array(X, dtype=np.float64, copy=True)
    for s in shifts:
        f = FEATURES[s.index]
        col = X[:, s.index]
        measured = ~np.isnan(col) & ((col != 0) if f.zero_means_missing else True)
        moved = np.clip(col[measured] + s.delta, f.minimum, f.maximum)
        if f.zero_means_missing:  # a shift must not land on 0, which would mean "not measured"
            moved = np.where(moved == 0, np.nextafter(0.0, 1.0), moved)
        col[measured] = np.round(moved) if f.integer else moved
    return X


def patient_records(X: np.ndarray) -> list[dict[str, Any]]:
    """Rows of the feature matrix as JSON patients (NaN -> null, integer features as ints)."""
    records = []
    for row in X.tolist():
        rec: dict[str, Any] = {}
        for f, v in zip(FEATURES, row, strict=True):
            if math.isnan(v):
                rec[f.code] = None
            else:
                rec[f.code] = int(v) if f.integer or f.choices else v
        records.append(rec)
    return records


def traffic(
    data: Annotated[Path, typer.Option(help="CSV or Parquet of patients (the data set's form).")],
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
    count: Annotated[
        int, typer.Option(min=1, max=MAX_COUNT, help="Patients to send in all.")
    ] = 1000,
    shift: Annotated[
        list[str] | None,
        typer.Option(help="Add to a feature's measured values: CODE=+N (repeatable)."),
    ] = None,
    outcomes_from: Annotated[
        str | None,
        typer.Option(
            help="Record outcomes drawn from this model's probabilities (NAME, VERSION or "
            "VERSION/NAME)."
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Patients per second at most.")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Patients per request.")] = 100,
    model: Annotated[str | None, typer.Option(help="Model the server should use.")] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="SEPSIS_API_TRAFFIC_KEY", help="API key to send.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the resampling and the outcomes.")] = 0,
    max_seconds: Annotated[
        float, typer.Option(min=1, help="Stop after this long whatever is left.")
    ] = 600,
    allow_remote: Annotated[
        bool, typer.Option(help="Allow a URL that is not on this machine (loopback).")
    ] = False,
) -> None:
    """Send resampled (optionally shifted) patients to a running server, with outcomes."""
    try:
        import httpx
    except ImportError:
        raise _fail("traffic needs httpx: pip install 'sepsis-api[ui]'") from None
    import numpy as np

    from sepsis_api.cli import _registry
    from sepsis_api.ml.data import DataError, load_table
    from sepsis_api.ml.scoring import open_model, score
    from sepsis_api.ml.store import ArtifactError

    if not is_loopback(url) and not allow_remote:
        raise _fail(f"--url {url}: not a loopback address; pass --allow-remote to send there")
    try:
        shifts = [parse_shift(s) for s in shift or []]
        X_all = load_table(data).X
    except (ValueError, DataError) as e:
        raise _fail(str(e)) from None
    oracle = None
    if outcomes_from is not None:
        try:
            oracle = open_model(outcomes_from, _registry(None))
        except (ArtifactError, LookupError) as e:
            raise _fail(f"--outcomes-from {outcomes_from}: {e}") from None
    rng = np.random.default_rng(seed)
    X = shifted(X_all[rng.integers(0, len(X_all), count)], shifts)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    params = {"model": model} if model else {}
    started = time.monotonic()
    deadline = started + max_seconds
    sent = alerts = recorded = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for start in range(0, count, batch):
            if time.monotonic() >= deadline:
                console.print(f"stopped after {max_seconds:g} s (--max-seconds)")
                break
            chunk = X[start : start + batch]
            reply = client.post(
                "/v1/predict/batch", params=params, json={"patients": patient_records(chunk)}
            )
            if reply.status_code != 200:
                raise _fail(f"POST /v1/predict/batch: {reply.status_code} {reply.text[:500]}")
            results = reply.json()["results"]
            sent += len(results)
            alerts += sum(r["label"] == LABEL_POSITIVE for r in results)
            if oracle is not None:
                p = score(oracle, chunk).probability
                drawn = rng.random(len(p)) < p
                outcomes = [
                    {
                        "prediction_id": r["prediction_id"],
                        "outcome": LABEL_POSITIVE if d else LABEL_NEGATIVE,
                        "source": "sepsis-api traffic",
                    }
                    for r, d in zip(results, drawn, strict=True)
                ]
                reply = client.post("/v1/outcomes", json={"outcomes": outcomes})
                if reply.status_code != 200:
                    raise _fail(f"POST /v1/outcomes: {reply.status_code} {reply.text[:500]}")
                recorded += len(outcomes)
            if rate is not None:  # pace: the next batch not before its time at this rate
                wait = started + sent / rate - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
    elapsed = time.monotonic() - started
    out.print(
        f"sent {sent} patients ({alerts} alerts) in {elapsed:.1f} s"
        + (f"; recorded {recorded} outcomes" if oracle is not None else "")
    )
