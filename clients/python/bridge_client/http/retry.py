"""When an HTTP request is sent again (no I/O here).

- The request never reached the server (connection refused, connect timeout):
  always, it cannot have done anything.
- 429 `throttled`, 503 `unavailable`, or no reply after the request was sent:
  only when the request is safe to repeat (`Request.retry_safe`): a read, or a
  push with an idempotency key (SPEC §5; added by default). A push without one,
  and a streamed part (which cannot carry one, SPEC §9), is not sent twice:
  the error goes to the caller, who knows whether repeating it is right.
- A 429 waits its `Retry-After`; the rest wait an exponential backoff with jitter.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge_client.backoff import Backoff
from bridge_client.http.calls import Request, retry_after

RETRY_STATUSES = frozenset({429, 503})


class RetryPolicy:
    def __init__(
        self,
        *,
        attempts: int = 4,
        minimum: float = 0.2,
        maximum: float = 5.0,
        longest_wait: float = 60.0,
    ) -> None:
        self.attempts = attempts
        self.minimum = minimum
        self.maximum = maximum
        self.longest_wait = longest_wait

    def backoff(self) -> Backoff:
        """A fresh backoff for one request's attempts."""
        return Backoff(minimum=self.minimum, maximum=self.maximum)

    def after_reply(
        self,
        request: Request,
        status: int,
        headers: Mapping[str, str],
        attempt: int,
        backoff: Backoff,
    ) -> float | None:
        """Seconds to wait before sending `request` again, or None: done."""
        if status not in RETRY_STATUSES or not request.retry_safe:
            return None
        if attempt + 1 >= self.attempts:
            return None
        hinted = retry_after(headers)
        delay = backoff.next_delay()
        if hinted is not None:
            if hinted > self.longest_wait:
                return None
            return hinted
        return delay

    def after_failure(
        self, request: Request, *, sent: bool, attempt: int, backoff: Backoff
    ) -> float | None:
        """Seconds to wait after a request got no reply, or None: give up.
        `sent` is False when the connection was never made."""
        if attempt + 1 >= self.attempts:
            return None
        if sent and not request.retry_safe:
            return None
        return backoff.next_delay()
