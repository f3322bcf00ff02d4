"""The WebSocket side's rate limits (SPEC §2 `rate_limited`, §11 close 4429).

Handshakes per address (counted before any credential is checked) and per user,
and client `message` and `signal` frames per user, count cluster-wide in Redis
(bridge_project/rate_limits.py): reconnecting, or connecting to another
process, does not reset them. ping, pong, ack, subscribe, unsubscribe, read and
refresh frames count per connection in memory, so they cost no Redis round
trip.
"""

from __future__ import annotations

from django.conf import settings

from bridge_project import rate_limits
from bridge_project.rate_limits import ConnectionWindow, Limit
from messaging.realtime.client_frames import FrameError
from messaging.realtime.handshake import HandshakeRefused

MINUTE = 60.0
# Cheap frames, counted per connection in memory; subscribe, unsubscribe and
# read cost a query and a Redis round trip each, and refresh a signature
# check (SPEC §10), and count here too.
CONTROL_FRAME_TYPES = frozenset(
    {"ping", "pong", "ack", "subscribe", "unsubscribe", "read", "refresh"}
)


async def admit_address(address: str) -> None:
    """Count a handshake from `address`; raises HandshakeRefused (4429)."""
    limit = settings.BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS
    if limit and address:
        decision = await rate_limits.hit(Limit("ws:address", limit, MINUTE), address)
        if not decision.allowed:
            raise _too_many_handshakes("from this address", decision)


async def admit_user(user_id: str) -> None:
    """Count a handshake of `user_id`; raises HandshakeRefused (4429)."""
    limit = settings.BRIDGE_HANDSHAKES_PER_MINUTE_PER_USER
    if limit:
        decision = await rate_limits.hit(Limit("ws:user", limit, MINUTE), user_id)
        if not decision.allowed:
            raise _too_many_handshakes("for this user", decision)


async def count_client_message(user_id: str, ref: str | None) -> None:
    """Count a `message` frame of `user_id`, on any connection of the cluster;
    raises FrameError `rate_limited`."""
    limit = Limit("ws:message", settings.BRIDGE_CLIENT_MESSAGES_PER_MINUTE, MINUTE)
    decision = await rate_limits.hit(limit, user_id)
    if not decision.allowed:
        raise FrameError(
            "rate_limited",
            "too many messages; slow down",
            ref,
            retry_after_ms=decision.retry_after_ms,
        )


async def count_client_signal(user_id: str, ref: str | None) -> None:
    """Count a `signal` frame of `user_id`, on any connection of the cluster
    (SPEC §9, BRIDGE_CLIENT_SIGNALS_PER_MINUTE); raises FrameError
    `rate_limited`."""
    limit = Limit("ws:signal", settings.BRIDGE_CLIENT_SIGNALS_PER_MINUTE, MINUTE)
    decision = await rate_limits.hit(limit, user_id)
    if not decision.allowed:
        raise FrameError(
            "rate_limited",
            "too many signals; slow down",
            ref,
            retry_after_ms=decision.retry_after_ms,
        )


def count_control_frame(
    window: ConnectionWindow, ref: str | None, topic: str | None = None
) -> None:
    """Count a control frame (CONTROL_FRAME_TYPES) in its connection's window;
    raises FrameError `rate_limited` (and refusals add up to 4400 like any
    other); a subscribe or unsubscribe refusal names its topic (SPEC §8)."""
    limit = settings.BRIDGE_CLIENT_CONTROL_FRAMES_PER_MINUTE
    decision = window.hit(limit, MINUTE)
    if not decision.allowed:
        raise FrameError(
            "rate_limited",
            "too many ping, pong, ack, subscribe, unsubscribe or read frames; "
            "slow down",
            ref,
            retry_after_ms=decision.retry_after_ms,
            topic=topic,
        )


def client_address(scope: dict) -> str:
    """The client's address, as DRF's throttles take it: BRIDGE_NUM_PROXIES
    entries from the end of X-Forwarded-For, else the peer's address."""
    peer = (scope.get("client") or ["", 0])[0] or ""
    proxies = settings.BRIDGE_NUM_PROXIES
    if not proxies:
        return peer
    for name, value in scope.get("headers", []):
        if name.lower() == b"x-forwarded-for":
            hops = value.decode("latin-1").split(",")
            return hops[-min(proxies, len(hops))].strip() or peer
    return peer


def _too_many_handshakes(whom: str, decision) -> HandshakeRefused:
    return HandshakeRefused(
        4429,
        "rate_limited",
        f"too many connection attempts {whom}; retry later",
        retry_after_ms=decision.retry_after_ms,
    )
