"""Time-ordered identifiers (UUID version 7 layout), strictly increasing within a process."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, sequence) of the last id


def new_id() -> str:
    """A UUIDv7: 48-bit Unix milliseconds, a 12-bit sequence within the millisecond, random.

    Sorting the strings sorts by creation time, so the audit log pages by id alone.
    """
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, seq = _last
        if ms <= last_ms:  # same millisecond (or the clock stepped back): keep increasing
            ms, seq = last_ms, seq + 1
            if seq > 0xFFF:
                ms, seq = ms + 1, 0
        else:
            seq = 0
        _last = (ms, seq)
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


def id_time_ms(identifier: str) -> int:
    """The creation time (Unix ms) encoded in an id from ``new_id``."""
    return uuid.UUID(identifier).int >> 80
