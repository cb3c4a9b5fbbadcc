"""The IDs seen so far in one file, compactly: the duplicate-ID check of the offline engine.

A Python ``set`` of millions of ``str`` objects costs about 100 bytes an ID (object header,
hash slot, the set's spare room). ``SeenIds`` keeps the ID bytes themselves in one growing
byte array (the arena), an int64 start offset per ID, and an open-addressing table (linear
probing, at most half full) of 8-byte slots, each the ID number and 32 bits of its hash:
``L + 8`` bytes an ID of ``L`` bytes plus 16 to 32 for the table, e.g. 30 to 50 bytes for
``P0000001`` (at most ~500 MB for 10 million such IDs, against ~1 GB as a set). A hash is
only where to look: every hit is confirmed by comparing the bytes, so a hash collision never
makes two different IDs a duplicate.

IDs come and go as Arrow string arrays, read from their offset and data buffers by numba
kernels (no Python string per row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from sepsis_api.ml.arrow_strings import string_buffers

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@numba.njit(cache=True, nogil=True)
def _hash(data: npt.NDArray[np.uint8], lo: int, hi: int) -> np.uint64:
    """FNV-1a over data[lo:hi], then a splitmix finaliser so that the low bits (the slot)
    depend on every byte."""
    h = _FNV_OFFSET
    for k in range(lo, hi):
        h = (h ^ np.uint64(data[k])) * _FNV_PRIME
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return h


@numba.njit(cache=True, nogil=True)
def _same(a: npt.NDArray[np.uint8], a_lo: int, a_hi: int,
          b: npt.NDArray[np.uint8], b_lo: int, b_hi: int) -> bool:  # fmt: skip
    if a_hi - a_lo != b_hi - b_lo:
        return False
    for k in range(a_hi - a_lo):  # noqa: SIM110  # numba: a plain loop, no generator
        if a[a_lo + k] != b[b_lo + k]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _add(
    data: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    given: npt.NDArray[np.bool_],
    slots: npt.NDArray[np.uint64],
    starts: npt.NDArray[np.int64],
    arena: npt.NDArray[np.uint8],
    count: int,
    duplicate: npt.NDArray[np.bool_],
) -> int:
    """Look up and add each given ID in order (a repeat within the batch is a duplicate too);
    the caller made room in ``slots``, ``starts`` and ``arena``. Returns the new count.

    A slot holds the hash's high 32 bits and the ID number + 1 (0: empty), so a probe
    touches the arena only when those 32 bits match."""
    mask = np.uint64(slots.shape[0] - 1)
    low = np.uint64(0xFFFFFFFF)
    for i in range(offsets.shape[0] - 1):
        if not given[i]:
            continue
        lo, hi = offsets[i], offsets[i + 1]
        h = _hash(data, lo, hi)
        tag = h & ~low
        s = h & mask
        while True:
            slot = slots[s]
            if slot == 0:
                break
            if slot & ~low == tag:
                j = np.int64(slot & low) - 1
                if _same(arena, starts[j], starts[j + 1], data, lo, hi):
                    duplicate[i] = True
                    break
            s = (s + np.uint64(1)) & mask
        if duplicate[i]:
            continue
        at = starts[count]
        for k in range(hi - lo):
            arena[at + k] = data[lo + k]
        starts[count + 1] = at + hi - lo
        count += 1
        slots[s] = tag | np.uint64(count)
    return count


@numba.njit(cache=True, nogil=True)
def _rehash(slots: npt.NDArray[np.uint64], starts: npt.NDArray[np.int64],
            arena: npt.NDArray[np.uint8], count: int) -> None:  # fmt: skip
    mask = np.uint64(slots.shape[0] - 1)
    low = np.uint64(0xFFFFFFFF)
    for j in range(count):
        h = _hash(arena, starts[j], starts[j + 1])
        s = h & mask
        while slots[s] != 0:
            s = (s + np.uint64(1)) & mask
        slots[s] = (h & ~low) | np.uint64(j + 1)


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    """``a`` with room for ``need`` items (doubling), its contents kept."""
    if need <= len(a):
        return a
    bigger = np.empty(max(need, 2 * len(a)), dtype=a.dtype)
    bigger[: len(a)] = a
    return bigger


@numba.njit(cache=True, nogil=True)
def _rising(
    data: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    given: npt.NDArray[np.bool_],
    last: npt.NDArray[np.uint8],
    last_len: int,
) -> int:
    """Whether the given IDs, after ``last[:last_len]`` (-1: none yet), rise strictly in byte
    order: the length of the last given ID if so (``last`` then holds it), else -1."""
    prev_lo, prev_hi = np.int64(-1), np.int64(-1)
    for i in range(offsets.shape[0] - 1):
        if not given[i]:
            continue
        lo, hi = offsets[i], offsets[i + 1]
        if prev_lo >= 0:
            a, a_lo, a_hi = data, prev_lo, prev_hi
        elif last_len >= 0:
            a, a_lo, a_hi = last, np.int64(0), np.int64(last_len)
        else:
            prev_lo, prev_hi = lo, hi
            continue
        k = 0
        while k < a_hi - a_lo and k < hi - lo and a[a_lo + k] == data[lo + k]:
            k += 1
        if k == hi - lo or (k < a_hi - a_lo and a[a_lo + k] > data[lo + k]):
            return -1  # equal to, or before, the one before it
        prev_lo, prev_hi = lo, hi
    if prev_lo < 0:
        return last_len
    for k in range(prev_hi - prev_lo):
        last[k] = data[prev_lo + k]
    return int(prev_hi - prev_lo)


Reread = Callable[[], Iterator[tuple["pa.Array[Any] | pa.ChunkedArray[Any]", np.ndarray]]]


class SeenIds:
    """A set of IDs (byte strings) with one operation: ``add`` a batch, learn which repeat.

    With ``reread`` (the IDs and their ``given`` masks of the same rows again, from the
    first, batch by batch: the file read a second time), IDs that rise strictly in byte
    order, as in a file sorted by ID, are not stored at all: no ID can repeat one before it,
    and only the last is kept. At the first ID that does not rise, the IDs so far are read
    again (``reread``) into the table, and the table is used from there on.
    """

    def __init__(self, reread: Reread | None = None) -> None:
        self._reread = reread
        self._rows = 0  # rows passed to add while rising
        self._last = np.empty(64, dtype=np.uint8)
        self._last_len = -1  # no ID yet
        self._count = 0
        self._slots = np.zeros(1 << 10, dtype=np.uint64)
        self._starts = np.zeros(1 << 9, dtype=np.int64)
        self._arena = np.empty(1 << 12, dtype=np.uint8)

    def add(self, ids: pa.Array[Any] | pa.ChunkedArray[Any], given: np.ndarray) -> np.ndarray:
        """Add the IDs of ``ids`` (UTF-8 strings) where ``given`` is true, in order; returns a
        bool array, true where the ID was seen before (in an earlier call or earlier in
        ``ids``). A duplicate is not added twice."""
        arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        n = len(arr)
        duplicate = np.zeros(n, dtype=np.bool_)
        if n == 0:
            return duplicate
        data, offsets = string_buffers(arr)
        given = np.ascontiguousarray(given, dtype=np.bool_)
        if self._reread is not None:
            longest = int(np.max(offsets[1:] - offsets[:-1]))
            if longest > len(self._last):
                self._last = _grown(self._last, longest)
            last_len = _rising(data, offsets, given, self._last, self._last_len)
            if last_len >= 0:
                self._last_len, self._rows = last_len, self._rows + n
                return duplicate
            reread, self._reread = self._reread, None  # the table from here on
            left = self._rows
            for earlier, earlier_given in reread():
                if left <= 0:
                    break
                take = min(left, len(earlier))
                part = earlier.slice(0, take)
                whole = part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part
                self._insert(*string_buffers(whole), np.asarray(earlier_given[:take]))
                left -= take
        self._insert(data, offsets, given, duplicate)
        return duplicate

    def _insert(self, data: np.ndarray, offsets: np.ndarray, given: np.ndarray,
                duplicate: np.ndarray | None = None) -> None:  # fmt: skip
        if duplicate is None:
            duplicate = np.zeros(len(offsets) - 1, dtype=np.bool_)
        given = np.ascontiguousarray(given, dtype=np.bool_)
        adding = int(np.count_nonzero(given))
        nbytes = int(offsets[-1] - offsets[0])
        need = self._count + adding
        if 2 * need > len(self._slots):  # at most half full
            size = len(self._slots)
            while 2 * need > size:
                size *= 2
            self._slots = np.zeros(size, dtype=np.uint64)
            _rehash(self._slots, self._starts, self._arena, self._count)
        self._starts = _grown(self._starts, need + 1)
        self._arena = _grown(self._arena, int(self._starts[self._count]) + nbytes)
        self._count = _add(
            data, offsets, given, self._slots, self._starts, self._arena, self._count, duplicate
        )
