"""How every Redis client of Bridge survives a Redis restart: a command that
finds its pooled connection dead is sent once more, on a new connection.

A pooled connection outlives the server it was opened to. redis-py 8 speaks
RESP3 by default, and with RESP3 its pools skip the check at checkout that
would notice an idle connection the server has closed (maintenance
notifications, "auto" by default, own that path); and a client built on a pool
of its own retries nothing unless told to. So right after a Redis restart the
first command on each pooled connection failed: `/health` already said 200
(its publish had found a live connection) while `GET /api/users/online`
answered 503 and handshakes closed with 1013.

One retry on ConnectionError is enough: the failed connection is closed and the
retry opens a new one. A timeout is not retried, so a frozen Redis costs a
caller one timeout, not two. Every client takes its policy from here:
redis_client (presence and operations, asyncio and blocking), the channel
layer's hosts (layers.pubsub_layer) and the Django cache behind the throttles
(settings.CACHES); tests/integration/test_redis_restart.py restarts a real
Redis under each.
"""

from __future__ import annotations

import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

RETRIED_ERRORS = (redis.ConnectionError,)


def retry_once() -> Retry:
    """For a blocking (redis.Redis) client's pool."""
    return Retry(NoBackoff(), 1, supported_errors=RETRIED_ERRORS)


def async_retry_once() -> AsyncRetry:
    """For an asyncio (redis.asyncio.Redis) client's pool."""
    return AsyncRetry(NoBackoff(), 1, supported_errors=RETRIED_ERRORS)
