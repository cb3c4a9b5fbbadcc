"""API key lists: ``SEPSIS_API_KEYS``-style entries and key files, for the server and the UI."""

from __future__ import annotations

import hashlib
from pathlib import Path


def parse_keys(spec: str | None, keys_file: Path | None) -> dict[str, str]:
    """key -> key id. An entry is KEY or ID:KEY; without an ID, a digest prefix stands in."""
    entries = [e.strip() for e in (spec or "").split(",")]
    if keys_file is not None:
        entries += [
            line.strip()
            for line in keys_file.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    keys: dict[str, str] = {}
    for entry in filter(None, entries):
        key_id, sep, key = entry.partition(":")
        if not sep:
            key, key_id = entry, "key-" + hashlib.sha256(entry.encode()).hexdigest()[:8]
        if len(key) < 16:
            raise ValueError(f"API key {key_id!r} is shorter than 16 characters")
        keys[key] = key_id
    return keys
