"""The real compose.yaml brought up with podman-compose: PostgreSQL, migrate, two API replicas
and the UI, then taken down with ``down -v``.

Beside compose.yaml (linked, not copied, into a temporary project folder that holds the test's
secrets) lies only an override naming the images (the stand-in PostgreSQL, the images built
from the Dockerfiles) and publishing every port on a free loopback port. Services come up one
at a time in dependency order, each waited on through its own health check: podman-compose
skips ``service_healthy`` conditions, and with podman 4.3 one ``up -d`` of the whole stack
stumbles over the exited migrate container.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from containers import ROOT, Image, Podman, compose_exe

from sepsis_api.ml.store import PACKAGED_ROOT, Registry

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
LABEL = "io.podman.compose.project"


@dataclass
class Stack:
    podman: Podman
    project: str
    folder: Path
    env: dict[str, str]
    keys: dict[str, str]
    replicas: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    migrate_exit: int | None = None
    migrate_log: str = ""
    down: bool = False

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        argv = [compose_exe() or "podman-compose", "-p", self.project]
        for name in ("compose.yaml", "compose.override.test.yaml"):
            argv += ["-f", str(self.folder / name)]
        proc = self.podman.run(
            [*argv, *args], env=self.env, cwd=self.folder, timeout=timeout, check=check
        )
        return proc.stdout + proc.stderr

    def containers(self, service: str | None = None) -> list[str]:
        filters = ["--filter", f"label={LABEL}={self.project}"]
        if service:
            filters += ["--filter", f"label=io.podman.compose.service={service}"]
        out = self.podman("ps", "--all", *filters, "--format", "{{.Names}}").stdout
        return sorted(out.split())

    def url(self, container: str, port: int) -> str:
        return f"http://127.0.0.1:{self.podman.host_port(container, port)}"


def write_project(folder: Path, api: Image, ui: Image, postgres: str) -> dict[str, str]:
    (folder / "compose.yaml").symlink_to(ROOT / "compose.yaml")
    (folder / "models").mkdir()  # SEPSIS_MODELS_DIR's default: no extra versions
    keys = {name: f"{name}:{secrets.token_urlsafe(32)}" for name in ("ui", "ehr", "ops")}
    box = folder / "secrets"
    box.mkdir(mode=0o700)
    for name, text in {
        "ui_api_key": keys["ui"],
        "api_keys": f"{keys['ui']}\n{keys['ehr']}",
        "admin_keys": keys["ops"],
    }.items():
        (box / name).write_text(text + "\n", encoding="utf-8")
        (box / name).chmod(0o644)  # readable by the images' user (uid 10001)
    # `!override` replaces a list where compose would otherwise merge it (compose spec).
    override = (
        yaml.safe_dump(
            {
                "services": {
                    "postgres": {"image": postgres},
                    "migrate": {"image": api.name},
                    "api": {"image": api.name, "ports": "PORTS_API"},
                    "ui": {"image": ui.name, "ports": "PORTS_UI"},
                }
            }
        )
        .replace("PORTS_API", '!override ["127.0.0.1::8000"]')
        .replace("PORTS_UI", '!override ["127.0.0.1::8501"]')
    )
    (folder / "compose.override.test.yaml").write_text(override, encoding="utf-8")
    return keys


@pytest.fixture(scope="module")
def stack(
    podman: Podman,
    api_image: Image,
    ui_image: Image,
    bases: dict[str, str],
    run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("compose")
    keys = write_project(folder, api_image, ui_image, bases["postgres"])
    # Only what the test sets: no compose variables (or SEPSIS_API_*) from the caller's shell.
    env = {
        k: v
        for k, v in podman.env.items()
        if not k.startswith(("SEPSIS_", "POSTGRES_", "COMPOSE_", "API_", "UI_"))
    }
    s = Stack(podman, f"sepsis-test-{run_id}", folder, env, keys)
    try:
        s.compose("up", "-d", "--no-build", "--no-deps", "postgres")
        (pg,) = s.containers("postgres")
        podman.wait_healthy(pg)
        s.compose("up", "-d", "--no-build", "--no-deps", "migrate")
        (migrate,) = s.containers("migrate")
        s.migrate_exit = int(podman("wait", migrate, timeout=240).stdout.strip())
        s.migrate_log = podman("logs", migrate).stdout
        s.compose("up", "-d", "--no-build", "--no-deps", "api")
        s.replicas = s.containers("api")
        for name in s.replicas:
            podman.wait_healthy(name)
            s.ports[name] = podman.host_port(name, 8000)
        s.compose("up", "-d", "--no-build", "--no-deps", "ui")
        (ui,) = s.containers("ui")
        podman.wait_healthy(ui)
        yield s
    finally:
        if not s.down:  # a failure on the way: still remove what came up
            s.compose("down", "-v", "--timeout", "5", check=False)


def test_migrate_upgrades_the_empty_database_and_exits_0(stack: Stack) -> None:
    assert stack.migrate_exit == 0, stack.migrate_log
    assert "empty -> " in stack.migrate_log and "@postgres:5432/sepsis" in stack.migrate_log


def test_both_api_replicas_are_ready_on_postgres(stack: Stack) -> None:
    assert len(stack.replicas) == 2, stack.replicas
    version = Registry([PACKAGED_ROOT]).default_version()
    for name in stack.replicas:
        url = stack.url(name, 8000)
        assert httpx.get(url + "/readyz").json() == {"status": "ready", "model_version": version}


def test_predictions_through_each_replica_land_in_one_history_in_order(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.keys['ehr'].split(':', 1)[1]}"}
    urls = [stack.url(name, 8000) for name in stack.replicas]
    sent = []
    for i in range(6):
        reply = httpx.post(
            urls[i % 2] + "/v1/predict", json={**PATIENT, "ID": f"p{i}"}, headers=headers
        )
        assert reply.status_code == 200, reply.text
        sent.append((f"p{i}", reply.json()["predictions"][0]["prediction_id"]))
    for url in urls:  # each replica reads the other's rows: one database
        items = httpx.get(url + "/v1/predictions", params={"limit": 50}, headers=headers).json()
        ours = [(r["patient_id"], r["prediction_id"]) for r in items["items"]]
        assert ours[: len(sent)] == sent[::-1], "history, newest first"
    (pg,) = stack.containers("postgres")
    rows = stack.podman(
        "exec", pg, "psql", "-U", "sepsis", "-d", "sepsis", "-At",
        "-c", "SELECT patient_id FROM predictions ORDER BY created_at, id",
    ).stdout.split()  # fmt: skip
    assert rows == [p for p, _ in sent]


def test_the_ui_answers_and_reaches_the_api_by_service_name(stack: Stack) -> None:
    (ui,) = stack.containers("ui")
    assert httpx.get(stack.url(ui, 8501) + "/_stcore/health").text == "ok"
    probe = (
        "import json\n"
        "from sepsis_api.ui.client import APIClient\n"
        "from sepsis_api.ui.common import api_target\n"
        "url, key = api_target()\n"
        "print(json.dumps({'url': url, 'ready': APIClient(url, key).readiness()['status']}))\n"
    )
    seen = json.loads(stack.podman("exec", ui, "python", "-c", probe).stdout)
    assert seen == {"url": "http://api:8000", "ready": "ready"}


def test_down_v_leaves_nothing_behind(stack: Stack) -> None:
    stack.compose("down", "-v", "--timeout", "5")
    stack.down = True
    label = f"label={LABEL}={stack.project}"
    assert stack.containers() == []
    assert stack.podman("volume", "ls", "--filter", label, "--quiet").stdout.split() == []
    assert stack.podman("network", "ls", "--filter", label, "--quiet").stdout.split() == []
    assert stack.podman("pod", "ls", "--quiet").stdout.split() == []
