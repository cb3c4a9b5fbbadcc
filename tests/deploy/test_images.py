"""Both images built from docker/*.Dockerfile (unmodified) and run under podman.

The API image: liveness, readiness, a keyed prediction (401 without the key), uid 10001, the
shipped model's hashes verified inside the image, no training libraries, a FHIR prediction and
an offline file scored (what the slimmed dependencies must still do); its size and cold start
(container start to /readyz 200) are printed. The UI image: Streamlit's health endpoint
and the UI's own client reaching the API container by name.
"""

from __future__ import annotations

import json
import secrets
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml
from containers import FIGURES, ROOT, Image, Podman
from fhir.resources.R4B.riskassessment import RiskAssessment

from fhir_bundles import bundle_json, patient, patient_observations
from sepsis_api.ml.store import PACKAGED_ROOT, Registry
from server import wait_for

pytestmark = pytest.mark.containers

PATIENT = {
    "PRG": 6,
    "PL": 148,
    "PR": 72,
    "SK": 35,
    "TS": 0,
    "M11": 33.6,
    "BD2": 0.627,
    "Age": 50,
    "Insurance": 1,
}
KEY_ID = "tests"


@dataclass
class Running:
    name: str
    url: str
    key: str


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def network(podman: Podman, run_id: str) -> Iterator[str]:
    name = f"sepsis-images-{run_id}"
    podman("network", "create", name)
    try:
        yield name
    finally:
        podman("network", "rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def api(podman: Podman, api_image: Image, network: str, run_id: str) -> Iterator[Running]:
    name, key = f"sepsis-api-{run_id}", secrets.token_urlsafe(32)
    start = time.monotonic()
    podman(
        "run", "--detach", "--name", name, "--network", network, "--publish", "127.0.0.1::8000",
        "--env", f"SEPSIS_API_KEYS={KEY_ID}:{key}", api_image.name,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{podman.host_port(name, 8000)}"
        wait_for(lambda: _answers(url + "/readyz"), "the API container's /readyz", timeout=180)
        FIGURES["api cold start"] = (
            f"{time.monotonic() - start:.1f} s from `podman run` to /readyz 200"
        )
        yield Running(name, url, key)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def test_api_image_is_live_ready_and_healthy(podman: Podman, api: Running) -> None:
    assert httpx.get(api.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(api.url + "/readyz").json()
    assert ready == {
        "status": "ready",
        "model_version": Registry([PACKAGED_ROOT]).default_version(),
    }
    podman.wait_healthy(api.name)  # the image's own HEALTHCHECK passes


def test_api_image_predicts_with_a_key_and_refuses_without(api: Running) -> None:
    refused = httpx.post(api.url + "/v1/predict", json=PATIENT)
    assert refused.status_code == 401
    reply = httpx.post(
        api.url + "/v1/predict", json=PATIENT, headers={"Authorization": f"Bearer {api.key}"}
    )
    assert reply.status_code == 200, reply.text
    (prediction,) = reply.json()["predictions"]
    assert 0 < prediction["probability"] < 1
    assert prediction["model_version"] == Registry([PACKAGED_ROOT]).default_version()


def test_api_image_answers_fhir(api: Running) -> None:
    reply = httpx.post(
        api.url + "/fhir/RiskAssessment/$predict",
        content=bundle_json(patient(), patient_observations()),
        headers={"content-type": "application/fhir+json", "Authorization": f"Bearer {api.key}"},
    )
    assert reply.status_code == 200, reply.text
    risk = RiskAssessment.model_validate_json(reply.text)
    assert risk.prediction and 0 < float(risk.prediction[0].probabilityDecimal or 0) < 1


def test_api_image_scores_a_file_offline(podman: Podman, api_image: Image) -> None:
    # CSV in, Parquet out, inside the image as its user: pyarrow's readers and writers, the
    # compiled kernel and the artifact loader, all from the slimmed install.
    header = ",".join(PATIENT)
    row = ",".join(str(v) for v in PATIENT.values())
    script = (
        f"printf '%s\\n' 'ID,{header}' 'a,{row}' 'b,{row}' > /tmp/in.csv"
        " && sepsis-api predict --input /tmp/in.csv --output /tmp/out.parquet >/dev/null"
        ' && python -c "import json, pyarrow.parquet as pq;'
        " print(json.dumps(pq.read_table('/tmp/out.parquet').to_pylist()))\""
    )
    out = podman("run", "--rm", "--network", "none", api_image.name, "sh", "-c", script).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    assert [r["ID"] for r in rows] == ["a", "b"]
    assert rows[0]["probability"] == rows[1]["probability"] and 0 < rows[0]["probability"] < 1


def test_api_image_starts_as_kubernetes_runs_it(
    podman: Podman, api_image: Image, run_id: str
) -> None:
    """As deploy/kubernetes/api-deployment.yaml runs it: a read-only root, an empty volume at
    /tmp seeded by the init container's own command. Ready, and on the kernels the image
    compiled: nothing in the seeded numba cache is written again."""
    manifest = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "api-deployment.yaml").read_text())
    pod = manifest["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (seed,) = init["volumeMounts"]
    volume, name = f"sepsis-tmp-{run_id}", f"sepsis-k8s-{run_id}"
    listing = ["find", "/tmp/numba", "-type", "f", "-printf", "%p %s %T@\\n"]
    podman("volume", "create", volume)
    try:
        podman(
            "run", "--rm", "--read-only", "--read-only-tmpfs=false", "--network", "none",
            "--volume", f"{volume}:{seed['mountPath']}:U", api_image.name, *init["command"],
        )  # fmt: skip
        seeded = podman(
            "run", "--rm", "--network", "none", "--volume", f"{volume}:/tmp", api_image.name,
            *listing,
        ).stdout  # fmt: skip
        key = secrets.token_urlsafe(32)
        podman(
            "run", "--detach", "--name", name, "--read-only", "--read-only-tmpfs=false",
            "--volume", f"{volume}:/tmp", "--publish", "127.0.0.1::8000",
            "--env", f"SEPSIS_API_KEYS={KEY_ID}:{key}",
            # PostgreSQL in Kubernetes; here a SQLite file in the one writable folder
            "--env", "SEPSIS_API_DATABASE_URL=sqlite:////tmp/audit.db", api_image.name,
        )  # fmt: skip
        url = f"http://127.0.0.1:{podman.host_port(name, 8000)}"
        try:
            wait_for(lambda: _answers(url + "/readyz"), "the read-only API container", 180)
        except AssertionError:
            raise AssertionError(podman("logs", name, check=False).stderr[-3000:]) from None
        reply = httpx.post(
            url + "/v1/predict", json=PATIENT, headers={"Authorization": f"Bearer {key}"}
        )
        assert reply.status_code == 200, reply.text
        assert seeded.count(".nbi") >= 1, seeded  # the image's cache was carried over
        assert podman("exec", name, *listing).stdout == seeded
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
        podman("volume", "rm", "--force", volume, check=False)


def test_api_image_runs_as_uid_10001(podman: Podman, api: Running, api_image: Image) -> None:
    assert (
        podman("image", "inspect", "--format", "{{.Config.User}}", api_image.name).stdout.strip()
        == "10001:10001"
    )
    status = podman("exec", api.name, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {"10001"}, status


def test_api_image_ships_the_model_and_verifies_its_hashes(
    podman: Podman, api_image: Image
) -> None:
    shipped = Registry([PACKAGED_ROOT]).open()
    # Wide enough that rich wraps no line (and no JSON string) of the output.
    wide = ["run", "--rm", "--network", "none", "--env", "COLUMNS=10000", api_image.name]
    shown = podman(*wide, "sepsis-api", "models", "show")
    assert f"all {len(shipped.card['files'])} file hashes OK" in shown.stdout, shown.stdout
    card = podman(*wide, "sepsis-api", "models", "show", "--json").stdout
    assert json.loads(card) == shipped.card


def test_api_image_has_no_training_libraries(podman: Podman, api_image: Image) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    train = [
        req.split(">")[0].split("[")[0].strip() for req in project["optional-dependencies"]["train"]
    ]
    probe = (
        "import importlib.metadata as m, json, sys\n"
        "names = {d.metadata['Name'].lower() for d in m.distributions()}\n"
        "print(json.dumps(sorted(n for n in sys.argv[1:] if n.lower() in names)))\n"
    )
    out = podman(
        "run", "--rm", "--network", "none", api_image.name, "python", "-c", probe, *train
    ).stdout
    assert json.loads(out) == [], "the serving image installs training-only packages"
    assert (
        podman("run", "--rm", "--network", "none", api_image.name, "pip", "check").returncode == 0
    )
    FIGURES["api image size"] = f"{api_image.size_bytes / 1e6:.0f} MB"


@pytest.fixture(scope="module")
def ui(
    podman: Podman, ui_image: Image, api: Running, network: str, run_id: str
) -> Iterator[Running]:
    name = f"sepsis-ui-{run_id}"
    podman(
        "run", "--detach", "--name", name, "--network", network, "--publish", "127.0.0.1::8501",
        "--env", f"SEPSIS_API_UI_API_URL=http://{api.name}:8000",
        "--env", f"SEPSIS_API_UI_API_KEY={api.key}", ui_image.name,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{podman.host_port(name, 8501)}"
        wait_for(lambda: _answers(url + "/_stcore/health"), "the UI container", timeout=180)
        yield Running(name, url, api.key)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def test_ui_image_serves_streamlit_and_is_healthy(podman: Podman, ui: Running) -> None:
    assert httpx.get(ui.url + "/_stcore/health").text == "ok"
    page = httpx.get(ui.url + "/")
    assert page.status_code == 200 and "<noscript>" in page.text
    podman.wait_healthy(ui.name)


def test_ui_container_reaches_the_api_container_by_name(
    podman: Podman, ui: Running, api: Running
) -> None:
    # The UI's own configuration and client, run inside its container as its user.
    probe = (
        "import json\n"
        "from sepsis_api.ui.client import APIClient\n"
        "from sepsis_api.ui.common import api_target\n"
        "url, key = api_target()\n"
        "client = APIClient(url, key)\n"
        "print(json.dumps({'url': url, 'ready': client.readiness(),"
        " 'version': client.models()['version']}))\n"
    )
    seen = json.loads(podman("exec", ui.name, "python", "-c", probe).stdout)
    version = Registry([PACKAGED_ROOT]).default_version()
    assert seen == {
        "url": f"http://{api.name}:8000",
        "ready": {"status": "ready", "model_version": version},
        "version": version,
    }
