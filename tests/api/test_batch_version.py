"""A batch records the version whose model produced each estimate, even when the served
version switches while the batch is being scored."""

from __future__ import annotations

import anyio.from_thread
import numpy as np
from sqlalchemy import select

from sepsis_api.db.models import Prediction
from sepsis_api.ml.data import load_table
from sepsis_api.ml.scoring import Predictor, score
from sepsis_api.ml.store import Registry
from sepsis_api.schema import FEATURES

CHUNKS = 3  # the batch spans this many of the service's 1,000-patient chunks


def _patients(test_csv) -> list[dict]:
    X = load_table(test_csv).X
    codes = [f.code for f in FEATURES]
    rows = [{c: None if np.isnan(v) else v for c, v in zip(codes, x, strict=True)} for x in X]
    return [{"ID": f"P{i}", **rows[i % len(rows)]} for i in range(CHUNKS * 1_000)]


def test_a_version_switch_mid_batch_never_mislabels_an_estimate(
    make_client, registry, shipped, small_version, test_csv
):
    client = make_client(model_dir=registry)
    svc = client.app.state.service
    assert svc.predictor.version.version == shipped.version
    reg = Registry([registry])

    # Activate the other version (the service's own switch, on the event loop) as soon as the
    # first chunk has been handed to the writer: later chunks are prepared after the switch.
    open_stream = svc.writer.stream

    def stream_that_switches():
        stream = open_stream()
        put = stream.put

        def put_then_switch(rows):
            put(rows)
            if svc.predictor.version.version == shipped.version:
                anyio.from_thread.run(svc.switch_to, reg, small_version.version)

        stream.put = put_then_switch
        return stream

    svc.writer.stream = stream_that_switches
    # The random forest: its trees depend on the training seed, so the versions disagree.
    r = client.post("/v1/predict/batch?model=random_forest", json={"patients": _patients(test_csv)})
    assert r.status_code == 200, r.text
    assert svc.predictor.version.version == small_version.version  # the switch happened
    request_id = r.headers["x-request-id"]

    with svc.audit.engine.connect() as conn:
        rows = conn.execute(select(Prediction).where(Prediction.request_id == request_id)).all()
    assert len(rows) == CHUNKS * 1_000
    # Recompute every estimate offline with the version and model its row names.
    codes = [f.code for f in FEATURES]
    by_version: dict[str, list] = {}
    for row in rows:
        by_version.setdefault(row.model_version, []).append(row)
    for version, recorded in by_version.items():
        model = Predictor(reg.open(version)).models[recorded[0].model_name]
        X = np.array(
            [[np.nan if r.inputs[c] is None else r.inputs[c] for c in codes] for r in recorded]
        )
        expected = score(model, X).probability
        np.testing.assert_allclose(
            [r.probability for r in recorded],
            expected,
            rtol=0,
            atol=1e-12,
            err_msg=f"rows recorded under {version}",
        )
    # The check has teeth: the two versions disagree on these patients.
    X = np.array([[np.nan if rows[0].inputs[c] is None else rows[0].inputs[c] for c in codes]])
    other = Predictor(small_version).models[rows[0].model_name]
    assert abs(score(other, X).probability[0] - rows[0].probability) > 1e-6
