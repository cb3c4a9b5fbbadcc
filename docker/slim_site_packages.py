"""Make an installed dependency tree smaller without changing what the service runs.

Used by both Dockerfiles' builder stage on the tree that `pip install --root` made:

    python slim_site_packages.py /staging

Removed: the dependencies' own test suites; C/C++ headers and Cython sources (for compiling
against a package, never read at run time); pyarrow's Arrow Flight (RPC) and C++ test
module, which the service never imports; the FHIR R5 and STU3 models of
fhir.resources (the service builds R4B resources only, api/protocols/fhir.py). Then every
shared library outside auditwheel's vendored ``*.libs`` folders (stripping those breaks them:
"ELF load command address/offset not page-aligned") loses its debug symbols with
``strip --strip-unneeded``; each one is loaded again (dlopen) and put back as shipped if
stripping broke it (auditwheel's patched extension modules: "not page-aligned").
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SOURCES = ("*.pyx", "*.pxd", "*.pxi", "*.h", "*.hpp", "*.c", "*.cc", "*.cpp")
PYARROW_UNUSED = (
    "include",
    "src",
    "libarrow_flight.so*",
    "libarrow_python_flight.so*",
    "_flight*.so",
    "flight.py",
    "_pyarrow_cpp_tests*.so",
)


def site_packages(root: Path) -> Path:
    found = sorted(root.glob("**/python3*/*-packages"))
    if len(found) != 1:
        sys.exit(f"slim_site_packages: expected one site-packages under {root}, found {found}")
    return found[0]


def remove(path: Path) -> int:
    """Bytes freed by removing ``path`` (a file or a folder)."""
    if path.is_dir() and not path.is_symlink():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
    else:
        size = path.lstat().st_size
        path.unlink()
    return size


def prune(site: Path) -> int:
    freed = 0
    for tests in sorted(site.glob("*/**/tests"), reverse=True):
        if tests.is_dir():
            freed += remove(tests)
    for pattern in SOURCES:
        for path in list(site.rglob(pattern)):
            freed += remove(path)
    for pattern in PYARROW_UNUSED:
        for path in list((site / "pyarrow").glob(pattern)):
            freed += remove(path)
    fhir = site / "fhir" / "resources"
    if fhir.is_dir():
        freed += remove(fhir / "STU3")
        for path in fhir.glob("*.py"):
            if path.name != "__init__.py":
                freed += remove(path)
        for path in (fhir / "__pycache__").glob("*.pyc"):
            if not path.name.startswith("__init__."):
                freed += remove(path)
    return freed


def loads(library: Path) -> bool:
    """Whether ``library`` can be loaded, tried in a separate process (a broken one may crash)."""
    probe = "import ctypes, sys; ctypes.CDLL(sys.argv[1])"
    run = subprocess.run(
        [sys.executable, "-c", probe, str(library)], capture_output=True, check=False
    )
    return run.returncode == 0


def strip_libraries(site: Path) -> int:
    """Bytes freed by stripping; a library is kept stripped only if it still loads."""
    freed = 0
    for library in sorted(site.rglob("*.so*")):
        if library.is_symlink() or not library.is_file():
            continue
        if any(part.endswith(".libs") for part in library.parts):
            continue
        before = library.stat().st_size
        original = library.with_name(library.name + ".unstripped")
        shutil.copy2(library, original)
        subprocess.run(["strip", "--strip-unneeded", str(library)], check=True)
        if not loads(library):  # e.g. patched by auditwheel: kept as shipped
            original.replace(library)
            continue
        original.unlink()
        freed += before - library.stat().st_size
    return freed


def main() -> None:
    site = site_packages(Path(sys.argv[1]))
    freed = prune(site) + strip_libraries(site)
    print(f"slim_site_packages: {freed / 1e6:.0f} MB freed in {site}")


if __name__ == "__main__":
    main()
