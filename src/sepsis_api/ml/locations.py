"""Where a table is read from or written to: a local path or a URL (``s3://bucket/key``).

URLs go through ``pyarrow.fs``; for S3 its usual settings apply: credentials from
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or a profile, or the instance role), the
region from ``AWS_DEFAULT_REGION``, and another endpoint (MinIO, Ceph, a test server) from
``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyarrow import fs

PARQUET_SUFFIXES = {".parquet", ".pq"}


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and "://" in location


def is_parquet(location: str | Path) -> bool:
    """Parquet by its suffix (``.parquet`` or ``.pq``), else CSV."""
    name = str(location).rsplit("?", 1)[0] if is_url(location) else str(location)
    return PurePosixPath(name).suffix.lower() in PARQUET_SUFFIXES


@dataclass(frozen=True)
class Location:
    filesystem: fs.FileSystem
    path: str  # in the filesystem's own spelling (bucket/key for S3)


def locate(location: str | Path) -> Location:
    """The filesystem and path of a local path or a URL; a URL pyarrow cannot open raises
    ``OSError`` naming it."""
    from pyarrow import fs

    if not is_url(location):
        return Location(fs.LocalFileSystem(), str(Path(location).absolute()))
    try:
        filesystem, path = fs.FileSystem.from_uri(str(location))
    except (ValueError, OSError) as e:  # pyarrow.ArrowInvalid is a ValueError
        raise OSError(f"{location}: cannot open this URL: {e}") from None
    return Location(filesystem, path)
