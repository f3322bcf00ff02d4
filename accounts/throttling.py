"""HTTP throttles per API key and per client address (SPEC §6 429), counted
cluster-wide with atomic Redis counters (bridge_project/rate_limits.py).

Rates are DRF's (`DEFAULT_THROTTLE_RATES`, from BRIDGE_THROTTLE_API_KEY_RATE and
BRIDGE_THROTTLE_ADDRESS_RATE); a refusal is DRF's Throttled, which the exception
handler turns into 429 `throttled` with `Retry-After`. While Redis is down each
process counts on its own instead of letting everything through."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from accounts.authentication import Caller
from bridge_project import rate_limits


class _CountedThrottle(BaseThrottle):
    scope: str

    def __init__(self) -> None:
        self.decision: rate_limits.Decision | None = None

    def allow_request(self, request, view) -> bool:
        counted = self._counted(request)
        if counted is None:
            return True
        self.decision = rate_limits.hit_blocking(*counted)
        return self.decision.allowed

    async def aallow_request(self, request, view) -> bool:
        """For views on the event loop (bridge_project/async_api_view.py)."""
        counted = self._counted(request)
        if counted is None:
            return True
        self.decision = await rate_limits.hit(*counted)
        return self.decision.allowed

    def _counted(self, request) -> tuple[rate_limits.Limit, str] | None:
        """The limit and the key this request counts against, or None."""
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        ident = self.ident(request)
        if rate is None or ident is None:
            return None
        return rate_limits.Limit.from_rate(f"http:{self.scope}", rate), ident

    def wait(self) -> float | None:
        """Seconds until the window ends (DRF's Retry-After)."""
        return None if self.decision is None else self.decision.retry_after

    def ident(self, request) -> str | None:
        raise NotImplementedError


class ApiKeyRateThrottle(_CountedThrottle):
    scope = "api_key"

    def ident(self, request) -> str | None:
        user = request.user
        if isinstance(user, Caller) and user.key_id is not None:
            return str(user.key_id)
        return None


class AddressRateThrottle(_CountedThrottle):
    """Callers without an API key (open mode, sessions), by client address.

    get_ident honours NUM_PROXIES, so a forged X-Forwarded-For cannot mint a
    fresh bucket."""

    scope = "address"

    def ident(self, request) -> str | None:
        user = request.user
        if isinstance(user, Caller) and user.key_id is not None:
            return None
        return self.get_ident(request)
