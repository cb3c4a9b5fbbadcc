"""GET /v1/model-files/plots/{name}: the model card's plots, for the web UI, and nothing else."""

from __future__ import annotations

import pytest

PNG = b"\x89PNG\r\n\x1a\n"


def test_serves_the_cards_plots_as_png(client) -> None:
    card = client.get("/v1/models/logistic_regression").json()["card"]
    plots = [k.removeprefix("plots/") for k in card["files"] if k.startswith("plots/")]
    assert {"roc.png", "pr.png", "calibration.png"} <= set(plots)
    for name in plots:
        r = client.get(f"/v1/model-files/plots/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content.startswith(PNG)
        assert r.headers["etag"] == f'"{card["files"]["plots/" + name]}"'


@pytest.mark.parametrize(
    "name", ["nope.png", "MODEL_CARD.md", "roc.PNG", "roc.png%00.md", "report.html", ".png"]
)
def test_anything_else_is_404_saying_what_exists(client, name: str) -> None:
    r = client.get(f"/v1/model-files/plots/{name}")
    assert r.status_code == 404
    assert "roc.png" in r.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "card.json",
        "plots/..%2Fcard.json",
        "plots/../card.json",
        "plots/..%2F..%2Fconfig.py",
        "plots/sub/roc.png",
    ],
)
def test_nothing_outside_plots_is_reachable(client, path: str) -> None:
    assert client.get(f"/v1/model-files/{path}").status_code == 404


def test_needs_a_key_when_keys_are_on(make_client) -> None:
    key = "plot-key-0123456789"
    keyed = make_client(api_keys=f"ui:{key}")
    assert keyed.get("/v1/model-files/plots/roc.png").status_code == 401
    ok = keyed.get("/v1/model-files/plots/roc.png", headers={"X-API-Key": key})
    assert ok.status_code == 200
