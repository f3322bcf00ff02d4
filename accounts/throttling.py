"""DRF throttles per API key and per client address, counted in the shared
Redis cache so that every process sees the same buckets (SPEC §6 429)."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from accounts.authentication import Caller
from bridge_project import redis_health

logger = logging.getLogger(__name__)


class _FailOpenThrottle(SimpleRateThrottle):
    """A throttle whose cache is down lets the request through: Redis being down
    must not break token minting or history reads (SPEC §6)."""

    def allow_request(self, request, view) -> bool:
        if redis_health.circuit.is_open:
            return True  # no cache to count in, and no waiting on a dead Redis
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as exc:
            logger.warning("throttle cache unavailable: %s", type(exc).__name__)
            return True


class ApiKeyRateThrottle(_FailOpenThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view) -> str | None:
        user = request.user
        if isinstance(user, Caller) and user.key_id is not None:
            return self.cache_format % {"scope": self.scope, "ident": user.key_id}
        return None


class AddressRateThrottle(_FailOpenThrottle):
    """Callers without an API key (open mode, sessions), by client address.

    get_ident honours NUM_PROXIES, so a forged X-Forwarded-For cannot mint a
    fresh bucket."""

    scope = "address"

    def get_cache_key(self, request, view) -> str | None:
        user = request.user
        if isinstance(user, Caller) and user.key_id is not None:
            return None
        return self.cache_format % {
            "scope": self.scope,
            "ident": self.get_ident(request),
        }
