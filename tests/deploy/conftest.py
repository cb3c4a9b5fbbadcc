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


@pytest.fixture(scope="session")
def images(podman: Podman, bases: dict[str, str], run_id: str) -> dict[str, Image]:
    built = podman.build(DOCKERFILES, f"localhost/sepsis-test:{run_id}", bases["python"])
    base = int(podman("image", "inspect", "--format", "{{.Size}}", bases["python"]).stdout)
    for name, image in built.items():
        FIGURES[f"{name} image"] = (
            f"{image.size_bytes / 1e6:.0f} MB ({base / 1e6:.0f} MB of it the stand-in base), "
            f"built in {image.build_seconds:.0f} s (both images at once)"
        )
    return built


@pytest.fixture(scope="session")
def api_image(images: dict[str, Image]) -> Image:
    return images["api"]


@pytest.fixture(scope="session")
def ui_image(images: dict[str, Image]) -> Image:
    return images["ui"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("container figures")
        for name, text in FIGURES.items():
            terminalreporter.write_line(f"{name}: {text}")
