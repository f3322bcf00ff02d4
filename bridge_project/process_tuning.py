"""Per-process CPU and memory savings measured under load (docs/performance.md).

Each runs once, from bridge_project.asgi, after the application is loaded.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os

# A push allocates a few thousand container objects (request, DRF, frames),
# so CPython's default first-generation threshold of 700 ran a collection
# several times per push, and every tenth of those ran a full one over every
# live connection's objects: 167 ms a time, 15 % of the server's CPU in the
# S1 benchmark. Most of a push's objects die by reference counting long before
# a collection, so collecting less often finds the same cyclic garbage for
# less work: 3.6 -> 3.3 ms of CPU per push, and no full-collection pauses
# during a run.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_garbage_collector() -> None:
    """Collect less often, and never again scan what start-up loaded."""
    gc.collect()
    # Modules, settings, URL patterns and the app registry live as long as
    # the process; frozen, full collections no longer walk them.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def cache_twisted_content_type() -> None:
    """Remember Twisted's parse of a request's Content-Type header.

    twisted.web parses the Content-Type of every POST with the email package's
    header registry to see whether it is a form (daphne never uses the
    result): 8 % of a push's CPU. Upstreams send the same few values, so the
    parse is cached; the result is bytes, immutable."""
    try:
        from twisted.web import http
    except ImportError:  # another ASGI server
        return
    if not hasattr(http._parseContentType, "cache_info"):
        http._parseContentType = functools.lru_cache(maxsize=64)(http._parseContentType)


def skip_twisted_access_log() -> None:
    """Stop Twisted formatting an access-log line that nobody reads.

    twisted.web's HTTPFactory formats every request as a combined-log line
    and writes it to Twisted's global log, which daphne points at nothing
    (verbosity 0-1) or at its own logger; daphne's own access log
    (`--access-log`, written by daphne.access) is separate and unaffected.
    The formatting was 3 % of a push's CPU."""
    try:
        from daphne.http_protocol import HTTPFactory
    except ImportError:  # another ASGI server
        return
    HTTPFactory.log = _no_access_log_line


def _no_access_log_line(self, request) -> None:
    return None


def cache_redis_library_version() -> None:
    """Look redis-py's version up once, not once per new Redis connection.

    redis-py reports its version to the server on every connection it makes,
    and finds it by scanning the installed packages' metadata each time:
    during a connect or disconnect storm (presence opens connections in
    bursts) that lookup was most of the cost of a new connection."""
    import redis.utils

    if not hasattr(redis.utils.get_lib_version, "cache_info"):
        redis.utils.get_lib_version = functools.cache(redis.utils.get_lib_version)


# glibc's malloc serves blocks above its mmap threshold with their own mapping,
# returned to the system on free; smaller ones come from arenas that keep the
# high-water mark. The threshold starts at 128 KiB and rises to the largest
# block freed, so the 32-64 KiB frames of large messages (and the bodies they
# are parsed from) fragment the arenas of every thread they pass through: in
# the soak (bench/soak.py, a slow reader sent 32 KiB messages) a process kept
# 19 MB more after the reader was closed (+14 % RSS), and with the threshold
# fixed at 32 KiB (MALLOC_MMAP_THRESHOLD_=32768) 5 MB (+5.5 %).
MMAP_THRESHOLD_BYTES = 32 * 1024
_M_MMAP_THRESHOLD = -3  # <malloc.h>


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD_BYTES; False where the C
    library is not glibc (musl, macOS) or the setting was refused.

    An operator's MALLOC_MMAP_THRESHOLD_ in the environment wins."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
