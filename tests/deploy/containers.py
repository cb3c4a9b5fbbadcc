"""A private buildah/podman setup for the container tests, and what it takes on this machine.

Everything lives under one temporary folder: image storage, podman's state and its networks
(CONTAINERS_CONF and CONTAINERS_STORAGE_CONF point both tools there), so a test run touches
nothing else on the machine and ``close()`` removes all of it. The settings below are the
workarounds this kind of machine needs; they live here, never in the files users run:

- runc (crun refuses hybrid cgroups) with the cgroupfs manager (no systemd);
- ulimits no higher than this process's own hard limits (podman's defaults ask for more);
- builds with ``--format docker`` (the OCI format drops HEALTHCHECK) and host networking for
  RUN steps (pip reaches the package registry); no layer cache (buildah 1.28, under podman
  build, cannot bind-mount a stage that came from the cache);
- health checks polled with ``podman healthcheck run`` (nothing schedules them without systemd).

Install the tools with scripts/ensure-test-tools.sh; scripts/container-bases.sh makes the
stand-in base images (no registry is reachable here).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server import wait_for

ROOT = Path(__file__).resolve().parents[2]
BASES_SCRIPT = ROOT / "scripts" / "container-bases.sh"
TOOLS = ("buildah", "podman", "mmdebstrap", "runc")
SETUP_HINT = "run scripts/ensure-test-tools.sh (as root) to install buildah, podman and mmdebstrap"
NPROC_CAP = 32768
# Figures the tests measure (image sizes, build times, cold start), printed at the end of a run.
FIGURES: dict[str, str] = {}


def compose_exe() -> str | None:
    """podman-compose from this environment (the dev extra), else from PATH."""
    beside = Path(sys.executable).with_name("podman-compose")
    return str(beside) if beside.is_file() else shutil.which("podman-compose")


def missing_reason() -> str | None:
    """Why containers cannot be built and run here, or None if they can."""
    if os.geteuid() != 0:
        return "building and running images here needs root (overlay storage, mmdebstrap)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found; {SETUP_HINT}"
    if compose_exe() is None:
        return "podman-compose not found (pip install -e '.[dev]')"
    return None


def _limit(kind: int, cap: int | None = None) -> int:
    hard = resource.getrlimit(kind)[1]
    if hard == resource.RLIM_INFINITY:
        hard = cap or 1 << 20
    return min(hard, cap) if cap else hard


@dataclass
class Image:
    name: str
    build_seconds: float
    size_bytes: int


class Podman:
    """``with Podman() as pm:`` gives private storage; ``pm("ps")`` runs ``podman ps`` in it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sepsis-podman-"))
        nofile, nproc = _limit(resource.RLIMIT_NOFILE), _limit(resource.RLIMIT_NPROC, NPROC_CAP)
        (self.root / "networks").mkdir()
        conf = self.root / "containers.conf"
        conf.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            'log_driver = "k8s-file"\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{self.root / "tmp"}"\n'
            "[network]\n"
            'network_backend = "netavark"\n'
            f'network_config_dir = "{self.root / "networks"}"\n',
            encoding="utf-8",
        )
        storage = self.root / "storage.conf"
        storage.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{self.root / "storage"}"\n'
            f'runroot = "{self.root / "run"}"\n',
            encoding="utf-8",
        )
        self.env = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("CONTAINERS_", "BUILDAH_"))
            },
            "CONTAINERS_CONF": str(conf),
            "CONTAINERS_STORAGE_CONF": str(storage),
        }

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ------------------------------------------------------------------------------
    def run(
        self, argv: list[str], *, timeout: float = 120, check: bool = True, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            argv,
            env=kw.pop("env", self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kw,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}"
                f"\n{proc.stderr[-3000:]}"
            )
        return proc

    def __call__(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(["podman", *args], **kw)

    def bases(self) -> dict[str, str]:
        """The stand-in base images (built once per machine, imported into this storage)."""
        out = self.run(["bash", str(BASES_SCRIPT)], timeout=1800).stdout
        return dict(line.split("=", 1) for line in out.split())

    def build(self, dockerfiles: dict[str, Path], tag: str, python_image: str) -> dict[str, Image]:
        """Build every Dockerfile unmodified from the repository root on the stand-in base, all
        at once (mostly downloads and the disk): ``{name: Image}``, tagged ``TAG-name``."""
        builds: dict[str, tuple[subprocess.Popen[bytes], Path, float]] = {}
        try:
            for name, dockerfile in dockerfiles.items():
                log = self.root / f"build-{name}.log"
                argv = [
                    "podman", "build", "--pull=never", "--format", "docker", "--network", "host",
                    "--build-arg", f"PYTHON_IMAGE={python_image}", "-f", str(dockerfile),
                    "-t", f"{tag}-{name}", str(ROOT),
                ]  # fmt: skip
                with log.open("wb") as out:  # the child keeps its own copy of the handle
                    proc = subprocess.Popen(
                        argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )  # fmt: skip
                builds[name] = (proc, log, time.monotonic())
            images = {}
            for name, (proc, log, started) in builds.items():
                code = proc.wait(timeout=1800)
                seconds = time.monotonic() - started
                tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
                assert code == 0, f"building {dockerfiles[name].name} failed ({code}):\n{tail}"
                image = f"{tag}-{name}"
                size = int(self("image", "inspect", "--format", "{{.Size}}", image).stdout)
                images[name] = Image(image, seconds, size)
            return images
        finally:
            for proc, _, _ in builds.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=60)

    def host_port(self, container: str, port: int) -> int:
        """The loopback port a container's ``port`` is published on."""
        line = self("port", container, str(port)).stdout.split()[0]
        host, _, number = line.rpartition(":")
        assert host == "127.0.0.1", f"{container}:{port} is published on {line}, not loopback"
        return int(number)

    def wait_healthy(self, container: str, timeout: float = 240) -> None:
        """Run the container's own health check until it passes (no systemd schedules it)."""

        def healthy() -> bool:
            state = self("inspect", "--format", "{{.State.Status}}", container).stdout.strip()
            if state not in ("running", "created", "configured"):
                logs = self("logs", container, check=False)
                raise AssertionError(f"{container} is {state}:\n{logs.stdout}{logs.stderr}")
            return self("healthcheck", "run", container, check=False).returncode == 0

        wait_for(healthy, f"{container}'s health check", timeout=timeout)

    def close(self) -> None:
        """Remove every container, image, network and volume of this storage, then the folder."""
        try:
            self("rm", "--all", "--force", "--time", "0", check=False, timeout=120)
            self("system", "reset", "--force", check=False, timeout=300)
        finally:
            # Left-over overlay mounts would keep rmtree from deleting the storage.
            mounts = Path("/proc/mounts").read_text(encoding="utf-8").split("\n")
            for line in reversed(mounts):
                fields = line.split()
                if len(fields) > 1 and fields[1].startswith(str(self.root)):
                    subprocess.run(["umount", "-l", fields[1]], check=False)
            shutil.rmtree(self.root, ignore_errors=True)
