"""Fixtures of the container tests: one private podman storage, the stand-in bases and both
images, built once per session from the repository's Dockerfiles; figures in the summary."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from containers import FIGURES, ROOT, Image, Podman, missing_reason

DOCKERFILES = {"api": ROOT / "docker" / "api.Dockerfile", "ui": ROOT / "docker" / "ui.Dockerfile"}


@pytest.fixture(scope="session")
def run_id() -> str:
    """Unique per run: names of containers, networks and compose projects."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    reason = missing_reason()
    if reason is not None:
        # CI must run these tests, so a machine that cannot is an error there, not a skip.
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with Podman() as pm:
        yield pm


@pytest.fixture(scope="session")
def bases(podman: Podman) -> dict[str, str]:
    return podman.bases()


def _build(podman: Podman, bases: dict[str, str], target: str, run_id: str) -> Image:
    tag = f"localhost/sepsis-test-{target}:{run_id}"
    image = podman.build(DOCKERFILES[target], tag, bases["python"])
    base = int(podman("image", "inspect", "--format", "{{.Size}}", bases["python"]).stdout)
    FIGURES[f"{target} image"] = (
        f"{image.size_bytes / 1e6:.0f} MB ({base / 1e6:.0f} MB of it the stand-in base), "
        f"built in {image.build_seconds:.0f} s"
    )
    return image


@pytest.fixture(scope="session")
def api_image(podman: Podman, bases: dict[str, str], run_id: str) -> Image:
    return _build(podman, bases, "api", run_id)


@pytest.fixture(scope="session")
def ui_image(podman: Podman, bases: dict[str, str], run_id: str) -> Image:
    return _build(podman, bases, "ui", run_id)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("container figures")
        for name, text in FIGURES.items():
            terminalreporter.write_line(f"{name}: {text}")
