"""Time-ordered identifiers (UUID version 7 layout), strictly increasing within a process."""

from __future__ import annotations

import os
import random
import struct
import threading
import time
import uuid

import numpy as np

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
    with _lock:
        ms, seq = _last
        now = time.time_ns() // 1_000_000
        if now > ms:
            ms, seq = now, -1
        # Same millisecond (or the clock stepped back): keep counting; 4,096 ids a millisecond,
        # then borrow the next millisecond.
        first = seq + 1
        last = first + n - 1
        _last = (ms + last // 4096, last % 4096)
        rand = _random.randbytes(8 * n)
    if n < 32:
        lows = struct.unpack(f"<{n}Q", rand)
        return [
            _format((ms + k // 4096) << 16 | 0x7000 | k % 4096, low)
            for k, low in zip(range(first, first + n), lows, strict=True)
        ]
    # Many at once (a batch): the same numbers with numpy, spelled out as hex digits with the
    # dashes in place, decoded as one string and cut into ids.
    counter = np.arange(first, first + n, dtype=np.uint64)
    words = np.empty((n, 2), dtype=">u8")
    words[:, 0] = (ms + counter // 4096) << 16 | 0x7000 | counter % 4096
    words[:, 1] = np.frombuffer(rand, dtype="<u8") >> 2 | _VARIANT
    octets = words.view(np.uint8).reshape(n, 16)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _DIGIT_AT[0::2]] = _HEX[octets >> 4]
    text[:, _DIGIT_AT[1::2]] = _HEX[octets & 0xF]
    flat = text.tobytes().decode("ascii")
    return [flat[i : i + 36] for i in range(0, 36 * n, 36)]


_VARIANT = 0b10 << 62  # RFC 9562 variant bits above 62 random bits
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGIT_AT = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])  # 32 hex positions


def _format(stamp: int, low: int) -> str:
    h = f"{stamp:016x}{low >> 2 | _VARIANT:016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_id() -> str:
    return new_ids(1)[0]


def id_time_ms(identifier: str) -> int:
    """The creation time (Unix ms) encoded in an id from ``new_id``."""
    return uuid.UUID(identifier).int >> 80
