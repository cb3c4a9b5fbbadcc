"""The UI talks to the API over HTTP only: its process never loads the model code.

A fresh interpreter imports every UI module and renders every page (AppTest, against the live
API), then reports what it has loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from sepsis_api.ui.launch import APP_PATH as APP

UI_DIR = APP.parent

SCRIPT = textwrap.dedent(f"""
    import json, sys
    import sepsis_api.ui.client, sepsis_api.ui.common, sepsis_api.ui.launch
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file({str(APP)!r}, default_timeout=60).run()
    for page in ("predict", "batch", "history", "model"):
        at.switch_page(f"pages/{{page}}.py").run()
    at.switch_page("pages/predict.py").run()
    at.button(key="example").click().run()
    at.button(key="submit").click().run()
    assert [m.label for m in at.metric] == ["Sepsis risk"], [e.value for e in at.error]
    print(json.dumps(sorted(sys.modules)))
""")


@pytest.fixture(scope="module")
def loaded(live_server) -> set[str]:
    env = {**os.environ, "SEPSIS_API_UI_API_URL": live_server.url}
    env.pop("SEPSIS_API_UI_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=UI_DIR,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def _under(modules: set[str], *roots: str) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


def test_ui_never_loads_scikit_learn_or_the_api(loaded: set[str]) -> None:
    assert "sepsis_api.ui.common" in loaded  # the pages did run
    assert not _under(
        loaded, "sklearn", "skops", "sepsis_api.api", "sepsis_api.db", "fastapi", "sqlalchemy"
    )


def test_ui_never_loads_the_ml_package(loaded: set[str]) -> None:
    assert not _under(loaded, "sepsis_api.ml"), _under(loaded, "sepsis_api.ml")
