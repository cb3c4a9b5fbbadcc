"""Audit ids: valid UUIDv7, unique, and sorted in creation order (the history pages by id)."""

from __future__ import annotations

import threading
import time
import uuid

from sepsis_api.ids import id_time_ms, new_id, new_ids


def test_ids_are_uuid7_carrying_the_creation_time():
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(value)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= id_time_ms(value) <= after + 1


def test_ids_increase_strictly_even_within_one_millisecond():
    # one at a time, a few, and a batch (few and many are spelled out differently)
    ids = new_ids(20_000) + [new_id() for _ in range(500)] + new_ids(3) + new_ids(40)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {p.version for p in parsed} == {7} and {p.variant for p in parsed} == {uuid.RFC_4122}
    assert all(str(p) == i for p, i in zip(parsed, ids, strict=True))


def test_ids_from_many_threads_are_unique():
    out: list[list[str]] = []

    def work() -> None:
        out.append([new_id() for _ in range(2_000)])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for chunk in out for i in chunk]
    assert len(set(flat)) == len(flat) == 16_000
    assert all(chunk == sorted(chunk) for chunk in out)
