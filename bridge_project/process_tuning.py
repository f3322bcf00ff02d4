"""Per-process CPU savings measured under load (docs/performance.md).

Both run once, from bridge_project.asgi, after the application is loaded.
"""

from __future__ import annotations

import functools
import gc

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
