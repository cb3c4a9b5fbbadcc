"""Kubernetes manifests (deploy/kubernetes/) checked offline, without a cluster.

Every manifest is validated with ``kubernetes-validate --strict`` against the Kubernetes schemas
that package bundles (one pinned version), and read as data to compare with what it deploys, as
test_deploy_files.py does for compose: probe paths are routes of the app, ports and start
commands are the images' and the settings', every variable is a Settings field, every key file
is a mounted Secret, and the pods run as the images' non-root user on a read-only root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from test_deploy_files import (
    API_CMD,
    API_PORT,
    PREFIX,
    SECRETISH,
    UI_CMD,
    UI_PORT,
    exec_form,
    health_url,
    interpolate,
    runtime,
    service,
    settings_env_names,
)

from sepsis_api.api.app import create_app
from sepsis_api.config import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = K8S / "kustomization.yaml"
# The Kubernetes version the manifests are validated against: one that kubernetes-validate
# bundles (`ls .../kubernetes_validate/kubernetes-json-schema/`), and that clusters still run.
KUBERNETES_VERSION = "1.33.0"
IMAGE_UID = 10001
WRITABLE = "/tmp"  # the one writable folder: an emptyDir
SECRETS_ROOT = "/run/secrets/"


# -- readers -----------------------------------------------------------------------------------
def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in manifest_files():
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def resource(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} in {K8S.relative_to(ROOT)}"
    return found[0]


def workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every resource that starts pods."""
    for doc in documents():
        if doc["kind"] in ("Deployment", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def container(kind: str, name: str) -> dict[str, Any]:
    (only,) = resource(kind, name)["spec"]["template"]["spec"]["containers"]
    return only


def config_map(name: str) -> dict[str, str]:
    data = resource("ConfigMap", name)["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    return data


def env_of(ctr: dict[str, Any]) -> dict[str, Any]:
    """The container's environment: ConfigMap values, then `env` entries (value or valueFrom)."""
    env: dict[str, Any] = {}
    for source in ctr.get("envFrom", []):
        env.update(config_map(source["configMapRef"]["name"]))
    for item in ctr.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def secret_files(pod: dict[str, Any], ctr: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Path in the container -> (Secret name, key) for every Secret file mounted."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in ctr.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        assert mount.get("readOnly") is True, f"{mount['mountPath']}: mount keys read-only"
        assert secret.get("items"), f"{secret['secretName']}: name the keys it mounts"
        for item in secret["items"]:
            path = f"{mount['mountPath'].rstrip('/')}/{item['path']}"
            files[path] = (secret["secretName"], item["key"])
    return files


def security(pod: dict[str, Any], ctr: dict[str, Any]) -> dict[str, Any]:
    """The container's effective security context (its own fields win over the pod's)."""
    return {**pod.get("securityContext", {}), **ctr.get("securityContext", {})}


def validator() -> str:
    exe = shutil.which("kubernetes-validate") or str(
        Path(sys.executable).with_name("kubernetes-validate")
    )
    if not Path(exe).is_file():
        reason = "kubernetes-validate not installed (pip install kubernetes-validate; dev extra)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return exe


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [validator(), "--strict", "--quiet", "-k", KUBERNETES_VERSION, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- schemas -----------------------------------------------------------------------------------
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas() -> None:
    proc = validate(*manifest_files())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout + proc.stderr


def test_the_validator_names_a_misspelled_field(tmp_path: Path) -> None:
    """The check above can fail: a copy with one wrong field name is refused, and named."""
    text = (K8S / "api-deployment.yaml").read_text(encoding="utf-8")
    assert text.count("readOnlyRootFilesystem: true") == 2  # the init container's and the API's
    broken = tmp_path / "api-deployment.yaml"
    wrong = text.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem", 1)
    broken.write_text(wrong, "utf-8")
    proc = validate(broken)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "deployment/sepsis-api" in output
    assert "'readOnlyRootFileSystem' was unexpected" in output
    assert "securityContext" in output  # where it is


def test_the_validator_names_a_wrong_type(tmp_path: Path) -> None:
    text = (K8S / "api-service.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "api-service.yaml"
    broken.write_text(text.replace("port: 8000", "port: [8000]"), "utf-8")
    proc = validate(broken)
    assert proc.returncode != 0 and "spec.ports.0.port" in proc.stdout + proc.stderr


def test_kustomization_lists_every_manifest_once() -> None:
    data = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert data["kind"] == "Kustomization"
    assert data["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    listed = data["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == [p.name for p in manifest_files()]
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in documents())
    assert kinds == [
        "ConfigMap/sepsis-api-config",
        "ConfigMap/sepsis-api-ui-config",
        "Deployment/sepsis-api",
        "Deployment/sepsis-api-ui",
        "HorizontalPodAutoscaler/sepsis-api",
        "Job/sepsis-api-migrate",
        "PodDisruptionBudget/sepsis-api",
        "Service/sepsis-api",
        "Service/sepsis-api-ui",
    ]
    assert not [d for d in documents() if d["kind"] == "Secret"], "keys are never committed"
    assert all("namespace" not in d["metadata"] for d in documents()), "kubectl -n chooses"


def test_kustomize_renders_what_validates(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the kustomize rendering is not checked")
    proc = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(proc.stdout, encoding="utf-8")
    assert len([d for d in yaml.safe_load_all(proc.stdout) if d]) == len(documents())
    checked = validate(rendered)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- the app: commands, ports, probes ----------------------------------------------------------
def test_containers_run_the_images_commands_on_the_settings_ports() -> None:
    assert Settings.model_fields["port"].default == API_PORT
    assert Settings.model_fields["ui_port"].default == UI_PORT
    for name, target, cmd, port in (
        ("sepsis-api", "api", API_CMD, API_PORT),
        ("sepsis-api-ui", "ui", UI_CMD, UI_PORT),
    ):
        ctr = container("Deployment", name)
        assert ctr["command"] == exec_form(runtime(target).all("CMD")[0]) == cmd
        assert "args" not in ctr
        assert ctr["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert runtime(target).all("EXPOSE") == [str(port)]
        svc = resource("Service", name)["spec"]
        assert svc["ports"] == [
            {"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}
        ]


def test_migration_job_runs_composes_migrate_command_with_the_api_image() -> None:
    job = resource("Job", "sepsis-api-migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    migrate = container("Job", "sepsis-api-migrate")
    assert migrate["command"] == service("migrate")["command"] == ["sepsis-api", "db", "upgrade"]
    assert migrate["image"] == container("Deployment", "sepsis-api")["image"]
    assert (
        env_of(migrate)["SEPSIS_API_DATABASE_URL"]
        == env_of(container("Deployment", "sepsis-api"))["SEPSIS_API_DATABASE_URL"]
    )


def test_images_are_the_ones_compose_and_the_readme_build() -> None:
    assert container("Deployment", "sepsis-api")["image"] == interpolate(service("api")["image"])
    assert container("Deployment", "sepsis-api-ui")["image"] == interpolate(service("ui")["image"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in ("api", "ui"):
        image = interpolate(service(target)["image"])
        assert f"-f docker/{target}.Dockerfile -t {image} ." in readme, f"README builds {image}"


def probes(ctr: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    found = {}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert kind in ctr, f"{ctr['name']} has no {kind}"
        get = ctr[kind]["httpGet"]
        found[kind] = (get["path"], get["port"])
    return found


def test_api_probes_hit_routes_of_the_app(tmp_path: Path) -> None:
    ctr = container("Deployment", "sepsis-api")
    found = probes(ctr)
    assert found["readinessProbe"] == ("/readyz", "http")
    assert found["livenessProbe"] == ("/healthz", "http")
    assert found["startupProbe"] == ("/healthz", "http")
    assert health_url(runtime("api").all("HEALTHCHECK")[0])[1] == "/healthz"
    app = create_app(Settings(data_dir=tmp_path))
    paths = set(app.openapi()["paths"])
    assert {"/readyz", "/healthz"} <= paths
    annotations = resource("Deployment", "sepsis-api")["spec"]["template"]["metadata"]
    assert annotations["annotations"]["prometheus.io/path"] in paths
    assert annotations["annotations"]["prometheus.io/port"] == str(API_PORT)
    client = TestClient(app)  # no lifespan: liveness needs neither the model nor the database
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503


def test_ui_probes_use_streamlits_health_endpoint_as_the_image_does() -> None:
    path = health_url(runtime("ui").all("HEALTHCHECK")[0])[1]
    assert path == "/_stcore/health"
    assert set(probes(container("Deployment", "sepsis-api-ui")).values()) == {(path, "http")}


def test_ui_reaches_the_api_through_its_service() -> None:
    env = env_of(container("Deployment", "sepsis-api-ui"))
    svc = resource("Service", "sepsis-api")
    assert env["SEPSIS_API_UI_API_URL"] == f"http://{svc['metadata']['name']}:{API_PORT}"


# -- the app: settings and secrets -------------------------------------------------------------
def test_every_variable_and_config_map_key_is_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = settings_env_names()
    for name in ("sepsis-api-config", "sepsis-api-ui-config"):
        keys = set(config_map(name))
        assert keys <= known, f"{name}: not Settings variables: {sorted(keys - known)}"
        for key, value in config_map(name).items():  # and every value is one Settings takes
            monkeypatch.setenv(key, value)
    for where, pod in workloads():
        for ctr in pod["containers"]:
            names = {n for n in env_of(ctr) if n.startswith(PREFIX)}
            assert names, f"{where} sets no SEPSIS_API_* variable"
            assert names <= known, f"{where}: not Settings variables: {sorted(names - known)}"
            assert not set(env_of(ctr)) - names - {"SEPSIS_API_DATABASE_URL"}
    monkeypatch.chdir(tmp_path)  # no .env
    settings = Settings()
    assert settings.db_auto_upgrade is False, "the Job migrates; replicas never do"
    assert settings.workers == 1


def test_key_files_are_mounted_secrets_and_no_secret_is_literal() -> None:
    for where, pod in workloads():
        for ctr in pod["containers"]:
            env, files = env_of(ctr), secret_files(pod, ctr)
            pointed = {v for n, v in env.items() if n.endswith("_FILE")}
            for name, value in env.items():
                if name.endswith("_FILE"):
                    assert value in files, f"{where}: {name}={value} is no mounted Secret file"
                    assert value.startswith(SECRETS_ROOT)
                elif SECRETISH.search(name) or name == "SEPSIS_API_DATABASE_URL":
                    assert isinstance(value, dict) and "secretKeyRef" in value, (
                        f"{where}: {name} must come from a Secret"
                    )
            assert set(files) == pointed, f"{where}: a mounted Secret file nobody reads"
    api = env_of(container("Deployment", "sepsis-api"))
    assert {"SEPSIS_API_KEYS_FILE", "SEPSIS_API_ADMIN_KEYS_FILE"} <= set(api)
    assert "SEPSIS_API_KEYS" not in api and "SEPSIS_API_ADMIN_KEYS" not in api
    assert "SEPSIS_API_UI_API_KEY_FILE" in env_of(container("Deployment", "sepsis-api-ui"))
    job = resource("Job", "sepsis-api-migrate")["spec"]["template"]["spec"]
    assert not secret_files(job, container("Job", "sepsis-api-migrate")), (
        "the migration needs the database, not the keys"
    )


def test_the_api_command_serves_with_the_kubernetes_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's command, under the Deployment's environment with stand-ins for the Secret
    files (and SQLite for the database URL), starts uvicorn on the container port with keys."""
    import uvicorn
    from typer.testing import CliRunner

    from sepsis_api.cli import app as cli_app
    from sepsis_api.config import get_settings

    deployment = resource("Deployment", "sepsis-api")["spec"]["template"]["spec"]
    ctr = container("Deployment", "sepsis-api")
    contents = {"api_keys": "ui:" + "u" * 32 + "\nehr:" + "e" * 32 + "\n", "admin_keys": ""}
    files = secret_files(deployment, ctr)
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    for name, value in env_of(ctr).items():
        if name.endswith("_FILE"):
            _, key = files[value]
            stand_in = tmp_path / key
            stand_in.write_text(contents[key], encoding="utf-8")
            value = str(stand_in)
        elif not isinstance(value, str):
            value = f"sqlite:///{tmp_path / 'audit.db'}"
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append(k))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ctr["command"][1:])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "API keys required (2 configured)" in result.output
    assert calls and calls[0]["host"] == "0.0.0.0" and calls[0]["port"] == API_PORT


# -- pods: security, resources, scaling --------------------------------------------------------
def image_user(target: str) -> tuple[int, int]:
    user, _, group = runtime(target).all("USER")[-1].partition(":")
    return int(user), int(group or user)


def test_pods_run_non_root_as_the_images_user_on_a_read_only_root() -> None:
    assert image_user("api") == image_user("ui") == (IMAGE_UID, IMAGE_UID)
    for where, pod in workloads():
        assert pod.get("automountServiceAccountToken") is False, where
        assert pod["securityContext"]["fsGroup"] == IMAGE_UID, where
        for ctr in pod["containers"] + pod.get("initContainers", []):
            sc = security(pod, ctr)
            assert sc["runAsNonRoot"] is True, where
            assert (sc["runAsUser"], sc["runAsGroup"]) == (IMAGE_UID, IMAGE_UID), where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert sc["readOnlyRootFilesystem"] is True, where
            volumes = {v["name"]: v for v in pod["volumes"]}
            writable = [
                m["mountPath"]
                for m in ctr["volumeMounts"]
                if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")
            ]
            if ctr in pod["containers"]:
                assert writable == [WRITABLE], f"{where}: writable {writable}"
            else:  # an init container writes only into the emptyDir it prepares
                assert len(writable) == 1, f"{where}: writable {writable}"


def test_api_pods_start_with_the_kernels_the_image_compiled() -> None:
    """The emptyDir at /tmp hides the image's numba cache; the init container copies it from
    the image's NUMBA_CACHE_DIR into that same emptyDir, where the API finds it again."""
    pod = resource("Deployment", "sepsis-api")["spec"]["template"]["spec"]
    envs = " ".join(runtime("api").all("ENV"))
    cache = re.search(r"NUMBA_CACHE_DIR=(\S+)", envs)
    assert cache
    (init,) = pod["initContainers"]
    api = container("Deployment", "sepsis-api")
    assert init["image"] == api["image"]
    (seed,) = init["volumeMounts"]
    (tmp,) = [m for m in api["volumeMounts"] if m["mountPath"] == WRITABLE]
    assert (
        seed["name"] == tmp["name"]
        and "emptyDir" in {v["name"]: v for v in pod["volumes"]}[seed["name"]]
    )
    # cp -R SRC DEST with DEST absent: DEST becomes the copy, i.e. /tmp/numba in the API pod.
    relative = Path(cache[1]).relative_to(WRITABLE)
    assert init["command"] == ["cp", "-R", cache[1], f"{seed['mountPath']}/{relative}"]


def test_what_the_app_writes_lands_in_the_writable_folder() -> None:
    """NUMBA_CACHE_DIR (the images' ENV) and the Prometheus multiprocess folder (a temporary
    folder, with workers > 1) are under /tmp; nothing writes SQLite (PostgreSQL by URL)."""
    for target in ("api", "ui"):
        envs = " ".join(runtime(target).all("ENV"))
        m = re.search(r"NUMBA_CACHE_DIR=(\S+)", envs)
        assert m and Path(m[1]).is_relative_to(WRITABLE), target
    for where, pod in workloads():
        for ctr in pod["containers"]:
            env = env_of(ctr)
            assert "TMPDIR" not in env and "PROMETHEUS_MULTIPROC_DIR" not in env, where
            if ctr["name"] != "ui":
                assert "secretKeyRef" in env["SEPSIS_API_DATABASE_URL"], where


def test_every_container_has_resource_requests_and_limits() -> None:
    for where, pod in workloads():
        for ctr in pod["containers"] + pod.get("initContainers", []):
            res = ctr["resources"]
            for kind in ("requests", "limits"):
                assert set(res[kind]) == {"cpu", "memory"}, f"{where}: {kind}"


def test_autoscaler_and_disruption_budget_keep_two_api_replicas() -> None:
    deployment = resource("Deployment", "sepsis-api")
    replicas = deployment["spec"]["replicas"]
    assert replicas == service("api")["deploy"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    hpa = resource("HorizontalPodAutoscaler", "sepsis-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "sepsis-api",
    }
    assert hpa["spec"]["minReplicas"] == replicas < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    pdb = resource("PodDisruptionBudget", "sepsis-api")["spec"]
    assert pdb["selector"]["matchLabels"] == labels
    assert 0 < pdb["minAvailable"] < replicas
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_services_select_their_deployments_pods() -> None:
    for name in ("sepsis-api", "sepsis-api-ui"):
        labels = resource("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        selector = resource("Service", name)["spec"]["selector"]
        assert selector.items() <= labels.items(), name
        job_labels = resource("Job", "sepsis-api-migrate")["spec"]["template"]["metadata"]
        assert not selector.items() <= job_labels["labels"].items(), "the Job is no endpoint"


def test_graceful_shutdown_fits_the_termination_grace_period() -> None:
    from sepsis_api.cli.serve import GRACEFUL_SHUTDOWN_SECONDS

    pod = resource("Deployment", "sepsis-api")["spec"]["template"]["spec"]
    pause = container("Deployment", "sepsis-api")["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + GRACEFUL_SHUTDOWN_SECONDS
