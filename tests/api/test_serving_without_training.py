"""The serving install leaves out the training extra: the API answers every kind of call in an
interpreter where scikit-learn, skops, matplotlib and jinja2 cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys, tempfile
    from importlib.abc import MetaPathFinder

    TRAINING = ("sklearn", "skops", "matplotlib", "jinja2", "joblib")

    class NoTraining(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in TRAINING:
                raise ImportError(f"{name} is a training dependency")
            return None

    sys.meta_path.insert(0, NoTraining())
    from fastapi.testclient import TestClient
    from sepsis_api.api.app import create_app
    from sepsis_api.config import Settings

    patient = {"ID": "P1", "PRG": 6, "PL": 148, "PR": 72, "SK": 35, "TS": 0, "M11": 33.6,
               "BD2": 0.627, "Age": 50, "Insurance": 0}
    settings = Settings(_env_file=None, data_dir=tempfile.mkdtemp())
    with TestClient(create_app(settings)) as c:
        calls = [
            c.post("/v1/predict?model=all&explain=true", json=patient),
            c.post("/v1/predict/batch", json={"patients": [patient] * 3}),
            c.post("/v1/predict/batch", content="PRG,PL,PR,SK,TS,M11,BD2,Age,Insurance\\n"
                   "6,148,72,35,0,33.6,0.627,50,0\\n", headers={"content-type": "text/csv"}),
            c.get("/v1/models"),
            c.get("/v1/predictions"),
            c.get("/readyz"),
        ]
        assert [r.status_code for r in calls] == [200] * len(calls), [r.text for r in calls]
    print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in TRAINING))
""")


def test_the_api_serves_without_any_training_dependency(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "loaded: []"
