"""An Arrow string array as numpy arrays, for the numba kernels that read text in place
(the duplicate-ID table, ml/seen_ids.py; the score CSV writer, batch/csv_out.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def string_buffers(arr: pa.Array[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A string array's data bytes and its int64 offsets into them (no copy of the data):
    value ``i`` is ``data[offsets[i]:offsets[i + 1]]``."""
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    wide = pa.types.is_large_string(arr.type)
    width = np.dtype(np.int64 if wide else np.int32)
    offsets = np.frombuffer(memoryview(offsets_buf), dtype=width)  # type: ignore[arg-type]  # a Buffer
    offsets = offsets[arr.offset : arr.offset + n + 1].astype(np.int64)  # one kernel, both widths
    data = (
        np.frombuffer(memoryview(data_buf), dtype=np.uint8)
        if data_buf is not None and data_buf.size
        else np.zeros(1, dtype=np.uint8)
    )
    return data, offsets
