"""The channel-layer configuration, in one place for settings and tests."""

from __future__ import annotations

from typing import Any

from bridge_project.redis_reconnect import async_retry_once


def pubsub_layer(
    redis_url: str, *, max_connections: int = 1000, publish_timeout: float = 3.0
) -> dict[str, Any]:
    """CHANNEL_LAYERS["default"] for Redis pub/sub.

    RedisPubSubChannelLayer, not the default RedisChannelLayer: the default layer
    keeps one queue of `capacity` (100) messages per process that all of its
    consumers share and silently drops group sends over it; measured with 1,000
    clients it lost 95-99 % of pushes while the same process served HTTP. The
    pub/sub layer hands each message straight to the subscribed process and lost
    nothing. Bridge never relies on the layer for durability (SPEC §5).

    redis-py 8 defaults to socket_timeout=5 s and a pool of 100 that raises when
    full. A read timeout is what killed idle consumers of the list-based layer
    (channels_redis#422); the pub/sub reader polls with its own short timeout,
    and tests/e2e/test_delivery.py keeps a socket idle past 15 s to prove it.
    Reads here never time out; connects are bounded, and delivery puts its own
    deadline (BRIDGE_LAYER_TIMEOUT) around every publish, which is what turns an
    outage into a 503. The pool is sized far above the two connections per
    process that the pub/sub layer opens, so a connect burst cannot exhaust it.
    Request threads publish over a blocking client whose every read is bounded
    by `publish_timeout` (BRIDGE_LAYER_TIMEOUT) instead.
    """
    host = {
        "address": redis_url,
        "socket_timeout": None,
        "socket_connect_timeout": 2,
        "socket_keepalive": True,
        "max_connections": max_connections,
        "health_check_interval": 15,
        # Publishes and the subscriber reconnect after a Redis restart instead
        # of failing once per pooled connection (redis_reconnect.py); the
        # subscriber's reconnect subscribes again to what it listened to.
        "retry": async_retry_once(),
    }
    return {
        "BACKEND": "bridge_project.channel_layer.GroupPubSubChannelLayer",
        "CONFIG": {
            "hosts": [host],
            "prefix": "bridge",
            "publish_timeout": publish_timeout,
        },
    }
