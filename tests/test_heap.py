"""The worker's C heap (streams.worker.heap): a burst's large buffers, freed between long-lived small objects, go
back to the system. Each case runs in a fresh interpreter (the heap's settings are per process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from streams.worker import heap

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="glibc only")

#: 96 buffers of 640 KiB (60 MiB), each followed by a small object that outlives it, as a burst's fetched records
#: are followed by the states they changed
BURST = textwrap.dedent("""
    import json, sys
    from streams.worker import heap
    if sys.argv[1] == "configured":
        heap.configure()
    big = b"x" * (1024 * 1024)
    del big                                # glibc raises its mmap threshold to 1 MiB when this mapped buffer is freed
    buffers, states = [], []
    before = heap.resident_bytes()
    for i in range(96):
        buffers.append(b"x" * (640 * 1024))
        states.append(b"s" * (1000 + i))  # past pymalloc's 512 bytes: from the C heap, after the buffer
    grown = heap.resident_bytes() - before
    del buffers
    kept = heap.resident_bytes() - before
    seconds, freed = heap.release()
    print(json.dumps({"grown": grown, "kept": kept, "freed": freed, "seconds": seconds}))
""")


def burst(mode: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc's defaults
    out = subprocess.run([sys.executable, "-c", BURST, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def test_freed_buffers_stay_in_an_untuned_heap_until_released() -> None:
    r = burst("default")
    assert r["grown"] > 50 * 2 ** 20
    assert r["kept"] > 0.8 * r["grown"], r  # pinned by the small objects after them: not handed back by free()
    assert r["freed"] > 0.8 * r["grown"], r  # malloc_trim hands the pages between them back
    assert r["seconds"] < 1.0


def test_configured_heap_maps_large_buffers_and_returns_them_when_freed() -> None:
    r = burst("configured")
    assert r["grown"] > 50 * 2 ** 20
    assert r["kept"] < 0.1 * r["grown"], r  # each buffer was mapped on its own and unmapped when freed


def test_a_checkpoints_records_hold_no_more_memory_than_their_bytes() -> None:
    """orjson's output keeps the buffer it was written in (8 KiB for a 1 KB record); a checkpoint holds its records
    until its transaction is sent, so the runtime keeps tight copies."""
    import ctypes

    import orjson

    from models.contracts.alert import Source
    from models.engine.runtime import Runtime
    from tests.test_capture import Ledger

    usable = heap._glibc().malloc_usable_size
    usable.restype, usable.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    raw = orjson.dumps({"lines": ["x" * 40] * 20})
    assert usable(id(raw)) > 4 * len(raw)  # what the runtime must not keep
    rt = Runtime([Ledger()])
    for i in range(400):
        rt.process({"patient": f"P{i % 20}", "_t": float(i)}, Source("zhijian.claims", 0, i, f"C{i}"))
    values = [v for _, _, v in rt.capture().all() if v is not None and len(v) > 600]
    assert len(values) == 20
    assert all(usable(id(v)) < len(v) + 128 for v in values)
