"""What one HTTP throttle check costs: DRF's SimpleRateThrottle on the Redis
cache (Bridge's throttle before bridge_project/rate_limits.py) against one
`rate_limits.hit_blocking`, on a throwaway redis-server, at the default
per-address rate (6000/minute), one bucket.

    python -m bench.throttle_cost

DRF's throttle reads the bucket's list of timestamps, unpickles it, trims it,
appends and writes it back: the cost grows with the rate. The counter is one
Lua script (INCR, PEXPIRE when new): one round trip whatever the rate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from bridge_project.embedded_redis import EmbeddedRedis

RATE = 6000


def _mean_ms(call: Callable[[], object], times: int) -> float:
    call()
    started = time.perf_counter()
    for _ in range(times):
        call()
    return (time.perf_counter() - started) / times * 1000


def main() -> None:
    server = EmbeddedRedis().start()
    os.environ.update(DJANGO_SETTINGS_MODULE="tests.settings", REDIS_URL=server.url)
    import django

    django.setup()
    from rest_framework.throttling import SimpleRateThrottle

    from bridge_project import rate_limits

    class DrfThrottle(SimpleRateThrottle):
        rate = f"{RATE}/minute"

        def get_cache_key(self, request, view) -> str:
            return "throttle_bench"

    limit = rate_limits.Limit("bench", RATE, 60)
    try:
        drf = _mean_ms(lambda: DrfThrottle().allow_request(None, None), RATE)
        counter = _mean_ms(lambda: rate_limits.hit_blocking(limit, "bench"), RATE)
    finally:
        server.stop()
    print(f"DRF SimpleRateThrottle, first {RATE} requests: {drf:.3f} ms/request")
    print(f"rate_limits.hit_blocking, {RATE} requests:     {counter:.3f} ms/request")


if __name__ == "__main__":
    main()
