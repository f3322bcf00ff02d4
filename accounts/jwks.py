"""Keys from a JWKS endpoint (BRIDGE_JWT_JWKS_URL, SPEC §10), cached.

PyJWKClient fetches and parses the set; the cache and its limits are here,
because PyJWKClient would refetch for every token with an unknown `kid`:
- a token whose `kid` is not in the set (or the first token of all) asks for
  a fetch, and at most one fetch starts per REFETCH_INTERVAL, whatever the
  number of such tokens; meanwhile they are refused at once;
- a set older than MAX_AGE is refetched in the background while its keys keep
  verifying (a key removed from the set stops verifying at the next fetch);
- fetches run one at a time on their own thread, never on an event loop or
  on a thread something else needs: callers wait on the returned future
  (asyncio.wrap_future on the loop) for at most FETCH_TIMEOUT, so an endpoint
  that is down or hangs costs only the tokens that need it, and only once a
  minute. Bridge tokens, API keys, sessions and BRIDGE_JWT_KEYS never wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientError, PyJWKError, PyJWKSetError

from accounts.jwt_keys import VerificationKey, public_key

logger = logging.getLogger(__name__)

REFETCH_INTERVAL = 60.0
MAX_AGE = 300.0
FETCH_TIMEOUT = 3.0


class JwksCache:
    def __init__(
        self,
        url: str,
        *,
        refetch_interval: float = REFETCH_INTERVAL,
        max_age: float = MAX_AGE,
        timeout: float = FETCH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.refetch_interval = refetch_interval
        self.max_age = max_age
        self.timeout = timeout
        self._clock = clock
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._inflight: Future | None = None
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.fetches = 0  # attempts, for tests and logs

    def key(self, kid: object) -> VerificationKey | None:
        """The cached key with this `kid`; never fetches."""
        return self._keys.get(kid) if isinstance(kid, str) else None

    def fetch_for(self, kid: object) -> Future | None:
        """What a token with this `kid` must wait for before it is verified:
        a fetch's future when the key is unknown and a fetch is running or
        may start now, else None. A stale set is refreshed in the background
        (None: the cached key verifies meanwhile)."""
        if self.key(kid) is None:
            return self._start_fetch()
        fetched_at = self._fetched_at
        if fetched_at is not None and self._clock() - fetched_at >= self.max_age:
            self._start_fetch()
        return None

    def _start_fetch(self) -> Future | None:
        with self._lock:
            if self._inflight is not None and not self._inflight.done():
                return self._inflight
            now = self._clock()
            attempted = self._attempted_at
            if attempted is not None and now - attempted < self.refetch_interval:
                return None
            self._attempted_at = now
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="bridge-jwks"
                )
            self._inflight = self._executor.submit(self._fetch)
            return self._inflight

    def _fetch(self) -> None:
        self.fetches += 1
        try:
            jwk_set = self._client.get_jwk_set(refresh=True)
        except (PyJWKClientError, PyJWKError, PyJWKSetError, ValueError) as exc:
            # The cached keys stay: an outage must not log everyone out. (A
            # body that is not JSON raises ValueError from json.load.)
            logger.warning("could not fetch the JWKS from %s: %s", self.url, exc)
            return
        keys: dict[str, VerificationKey] = {}
        for jwk in jwk_set.keys:
            if not jwk.key_id or jwk.public_key_use not in ("sig", None):
                continue
            try:
                keys[jwk.key_id] = public_key(jwk.key)
            except ValueError as exc:  # an HMAC or weak key has no place here
                logger.warning("JWKS key %r ignored: %s", jwk.key_id, exc)
        self._keys = keys
        self._fetched_at = self._clock()
        logger.info("fetched %d keys from the JWKS at %s", len(keys), self.url)
