"""Keep a long-running server's resident memory flat (glibc on Linux; elsewhere these do nothing).

Each request allocates and frees activations of a different shape (window count, batch length,
sentence count). glibc keeps freed blocks in its heaps for reuse, one heap ("arena") per thread
that ever allocated, so a server's RSS creeps up with the variety of requests and the number of
worker threads although nothing leaks. Two remedies, both measured in README "Load test":
fewer arenas (set once at start), and handing free pages back to the OS after each request
(``malloc_trim``), done by the API when no other request is waiting.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_ARENA_MAX = -8   # mallopt parameter from glibc's malloc.h


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _libc()


def limit_arenas(n: int = 2) -> bool:
    """Use at most ``n`` malloc arenas (as MALLOC_ARENA_MAX=n); call before threads start.
    Returns whether it took effect (False off glibc)."""
    return bool(_LIBC and _LIBC.mallopt(M_ARENA_MAX, int(n)) == 1)


def release_free_memory() -> bool:
    """Return free heap pages to the OS (``malloc_trim(0)``). Returns whether memory was released."""
    return bool(_LIBC and _LIBC.malloc_trim(0))
