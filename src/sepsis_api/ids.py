"""Time-ordered identifiers (UUID version 7 layout), strictly increasing within a process."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

_lock = threading.Lock()
# Random bits for ids from a generator seeded by the OS once: ids need to be unique, not secret
# (reading them needs an API key), and one getrandom() call per estimate is measurable.
_random = random.Random(os.urandom(32))
_last = (0, 0)  # (milliseconds, sequence) of the last id


def new_ids(n: int) -> list[str]:
    """n UUIDv7s: 48-bit Unix milliseconds, a 12-bit sequence within the millisecond, random.

    Sorting the strings sorts by creation time, so the audit log pages by id alone.
    """
    global _last
    stamps = []
    with _lock:
        ms, seq = _last
        now = time.time_ns() // 1_000_000
        if now > ms:
            ms, seq = now, -1
        for _ in range(n):  # same millisecond (or the clock stepped back): keep increasing
            seq += 1
            if seq > 0xFFF:
                ms, seq = ms + 1, 0
            stamps.append((ms << 16) | (0x7 << 12) | seq)
        _last = (ms, seq)
        rand = [_random.getrandbits(62) for _ in range(n)]
    out = []
    for stamp, bits in zip(stamps, rand, strict=True):
        low = bits | (0b10 << 62)
        h = f"{stamp:016x}{low:016x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def new_id() -> str:
    return new_ids(1)[0]


def id_time_ms(identifier: str) -> int:
    """The creation time (Unix ms) encoded in an id from ``new_id``."""
    return uuid.UUID(identifier).int >> 80
