"""The worker's C heap on glibc (Linux): large buffers mapped on their own, free pages handed back.

Measured in ``zhijian bench`` (docs/benchmark.md): after the 200,000-event burst glibc's heap held 293 MiB of
which 56 MiB were in use; the rest was free but kept, most of the worker's peak RSS (0.5 GiB). The burst's large,
short-lived buffers (a fetched batch of records, a 500-event envelope, a checkpoint's record batch) were placed
in the heap — glibc raises its mmap threshold each time such a buffer is freed — between long-lived states, so
the space they left could not be handed back, and the next burst of them grew the heap again.

:func:`configure` fixes the threshold at :data:`MMAP_THRESHOLD`: a buffer that large is mapped for itself and
unmapped when freed. :func:`release` (the worker calls it every :data:`RELEASE_EVERY_S`) gives the free pages inside
the heap back to the system (``malloc_trim``). Elsewhere (another C library, another system) both do nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import time

log = logging.getLogger(__name__)

#: Buffers at least this large are mapped on their own (glibc's initial threshold, kept fixed)
MMAP_THRESHOLD = 128 * 1024
#: How often the worker hands the heap's free pages back: rarely, since a page handed back and used again is
#: faulted in and zeroed anew (every 5 s, 460 MiB went back and forth in one bench run, and its steady phase paid
#: for it); a burst's leftovers go back within this
RELEASE_EVERY_S = 60.0
_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)

_libc: ctypes.CDLL | None = None


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:  # pragma: no cover — glibc named but not loadable
            return None
    return _libc


def configure() -> bool:
    """Map buffers of :data:`MMAP_THRESHOLD` or more on their own; whether the C library took it (glibc only).

    >>> configure() in (True, False)
    True
    """
    libc = _glibc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not ok:  # pragma: no cover — glibc refuses only values above its maximum
        log.warning("the C heap's mmap threshold was not set; the worker's memory may grow after bursts")
    return ok


def resident_bytes() -> int:
    """This process's resident set now (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def release() -> tuple[float, int]:
    """Hand the heap's free pages back to the system: (seconds it took, bytes of resident memory it freed);
    (0, 0) where the C library cannot.

    >>> seconds, freed = release()
    >>> seconds >= 0 and freed >= 0
    True
    """
    libc = _glibc()
    if libc is None:
        return 0.0, 0
    before = resident_bytes()
    started = time.perf_counter()
    libc.malloc_trim(0)
    return time.perf_counter() - started, max(0, before - resident_bytes())
