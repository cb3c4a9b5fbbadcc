"""The scores as CSV, formatted by a numba kernel: the bytes pyarrow's CSV writer writes for
them (a header row; every text quoted, quotes doubled; the probability with six decimals,
rounded as Arrow casts a float64 to ``decimal128(7, 6)``; ``\\n`` after each row), at several
times its speed, and without the GIL so that it overlaps the scoring of the next chunk.

tests/batch/test_csv_out.py holds it to pyarrow's writer byte for byte.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numba
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from sepsis_api.batch.frames import OUTPUT_SCHEMA
from sepsis_api.ml.arrow_strings import string_buffers

# Six decimals, written as a decimal so that every one is written ("0.500000", not "0.5").
PROBABILITY = pa.decimal128(7, 6)
_TEXT = [name for name in OUTPUT_SCHEMA.names if name != "probability"]
_AFTER = OUTPUT_SCHEMA.get_field_index("probability")  # text columns before the number
_QUOTE, _COMMA, _NEWLINE, _DOT, _MINUS, _ZERO = (ord(c) for c in '",\n.-0')


@numba.njit(cache=True, nogil=True)
def _text(
    out: npt.NDArray[np.uint8], at: int, data: npt.NDArray[np.uint8], lo: int, hi: int
) -> int:
    out[at] = _QUOTE
    at += 1
    for k in range(lo, hi):
        c = data[k]
        out[at] = c
        at += 1
        if c == _QUOTE:
            out[at] = _QUOTE
            at += 1
    out[at] = _QUOTE
    return at + 1


@numba.njit(cache=True, nogil=True)
def _format(
    data: tuple[npt.NDArray[np.uint8], ...],
    offsets: tuple[npt.NDArray[np.int64], ...],
    micro: npt.NDArray[np.int64],
    after: int,
    out: npt.NDArray[np.uint8],
) -> int:
    """Rows of ``len(data)`` text columns with the number (millionths) after the first
    ``after`` of them; returns the bytes written."""
    at = 0
    digits = np.empty(20, np.uint8)
    for i in range(micro.shape[0]):
        for c in range(len(data)):
            if c == after:
                v = micro[i]
                if v < 0:
                    out[at] = _MINUS
                    at += 1
                    v = -v
                whole, frac = v // 1_000_000, v % 1_000_000
                n = 0
                while True:
                    digits[n] = _ZERO + whole % 10
                    n += 1
                    whole //= 10
                    if whole == 0:
                        break
                for k in range(n - 1, -1, -1):
                    out[at] = digits[k]
                    at += 1
                out[at] = _DOT
                for k in range(6, 0, -1):
                    out[at + k] = _ZERO + frac % 10
                    frac //= 10
                at += 7
                out[at] = _COMMA
                at += 1
            at = _text(out, at, data[c], offsets[c][i], offsets[c][i + 1])
            out[at] = _COMMA if c < len(data) - 1 else _NEWLINE
            at += 1
    return at


def millionths(probability: pa.Array[Any]) -> np.ndarray:
    """The probability rounded to six decimals as Arrow rounds it, in millionths."""
    six = pc.cast(probability, PROBABILITY, safe=False)
    _, data = six.buffers()
    words = np.frombuffer(memoryview(data), dtype=np.int64)  # type: ignore[arg-type]  # a Buffer
    return words[2 * six.offset : 2 * (six.offset + len(six)) : 2].copy()  # low words


class ScoresCsv:
    """Writes ``OUTPUT_SCHEMA`` batches to an open binary file as CSV, header first."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        header = ",".join('"' + name.replace('"', '""') + '"' for name in OUTPUT_SCHEMA.names)
        fh.write((header + "\n").encode())

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        columns = [batch.column(name) for name in _TEXT]
        probability = batch.column("probability")
        if any(c.null_count for c in [*columns, probability]) or any(
            c.type != pa.string() for c in columns
        ):  # not what scoring makes: pyarrow's writer, same format
            six = pc.cast(probability, PROBABILITY, safe=False)
            i = batch.schema.get_field_index("probability")
            pcsv.write_csv(
                batch.set_column(i, "probability", six),
                self._fh,
                write_options=pcsv.WriteOptions(include_header=False),
            )
            return
        buffers = [string_buffers(c) for c in columns]
        micro = millionths(probability)
        size = sum(2 * int(o[-1] - o[0]) + 3 * len(o) for _, o in buffers) + 32 * len(micro)
        out = np.empty(size, dtype=np.uint8)
        used = _format(
            tuple(d for d, _ in buffers), tuple(o for _, o in buffers), micro, _AFTER, out
        )
        self._fh.write(out[:used].data)
