"""A connection's token lifetime (SPEC §10): `expires_at`, `token_expiring`,
the 4401 `token_expired` close, and `refresh` → `refreshed`.

`TokenExpiry` is a part of BridgeConsumer (messaging/realtime/consumers.py).
The deadlines are kept by the process's one ExpiryClock (expiry.py); a due
deadline arrives here as a `bridge.token_deadline` event in the connection's
own inbox, so it is handled in order with the client's frames.

A refused `refresh` leaves the connection as it was: a token for another user
is `forbidden`; a token that does not verify (bad signature, expired, not a
Bridge token or JWT at all, an API key) is `unauthenticated`.
"""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError

from accounts.credentials import InvalidToken, auser_token_claims
from messaging import frames
from messaging.realtime.client_frames import ClientFrame, FrameError
from messaging.realtime.expiry import EXPIRE, expiry_clock_for_loop
from messaging.streams import topics
from messaging.ws_database import run_db

logger = logging.getLogger(__name__)

# SPEC §8 `unsubscribed` reason: no longer a member or grant.
REMOVED = "removed"


class TokenExpiry:
    user_id: str | None
    close_code: int | None
    topic_grants: tuple[str, ...] = ()
    # Unix time; None: the credential does not expire (sessions, API keys).
    expires_at: float | None = None
    # The expiry a `token_expiring` was sent for (one per token).
    warned_for: float | None = None

    def watch_expiry(self) -> None:
        """After `connected`: arm this connection's deadlines."""
        if self.expires_at is not None:
            expiry_clock_for_loop().schedule(self, self.expires_at)

    def forget_expiry(self) -> None:
        """On leaving (refused handshakes too)."""
        expiry_clock_for_loop().discard(self)

    def token_deadline(self, kind: str) -> None:
        """Called by the ExpiryClock on the loop; never awaits."""
        self.channel_layer.inbox(self.channel_name).put_nowait(
            {"type": "bridge.token_deadline", "kind": kind}
        )

    async def bridge_token_deadline(self, event: dict) -> None:
        """Queued by token_deadline(): warn, or close if the token has
        expired meanwhile and no `refresh` came (SPEC §10, §11)."""
        expires_at = self.expires_at
        if self.user_id is None or expires_at is None or self.close_code is not None:
            return
        now = time.time()
        if now >= expires_at:
            await self._close_with_error(
                4401, "token_expired", "the token expired; connect with a new one"
            )
            return
        # A deadline of the token a `refresh` replaced while the event waited
        # in the inbox: the new token is not due yet.
        due = now >= expires_at - expiry_clock_for_loop().lead
        if due and event.get("kind") != EXPIRE and self.warned_for != expires_at:
            self.warned_for = expires_at
            await self._send_frame(frames.token_expiring_frame(expires_at=expires_at))

    async def on_refresh(self, frame: ClientFrame) -> None:
        """SPEC §10: a new token for the same user moves `expires_at` and
        replaces the topic grants; subscriptions the new grants no longer
        admit end with reason `removed`."""
        try:
            claims = await auser_token_claims(frame.token)
        except InvalidToken as exc:
            raise FrameError(
                "unauthenticated", f"refresh refused: {exc}", frame.ref
            ) from None
        if claims.user_id != self.user_id:
            raise FrameError("forbidden", "the token is for another user", frame.ref)
        dropped = set(self.topic_grants) - set(claims.topics)
        self.topic_grants = claims.topics
        self.expires_at = claims.expires_at
        expiry_clock_for_loop().schedule(self, claims.expires_at)
        await self._send_frame(
            frames.refreshed_frame(expires_at=claims.expires_at, ref=frame.ref)
        )
        if dropped and self.topics:
            await self._end_ungranted_subscriptions()

    async def _end_ungranted_subscriptions(self) -> None:
        held = list(self.topics or ())
        try:
            refused = await run_db(
                _refused_topics, self.user_id, held, self.topic_grants
            )
        except DatabaseError:
            # The heartbeat does not recheck: log it; the next refresh will.
            logger.warning("could not recheck subscriptions of %s", self.user_id)
            return
        for topic in refused:
            if self.topics and topic in self.topics:
                await self._end_subscription(topic, REMOVED)


def _refused_topics(
    user_id: str, held: list[str], grants: tuple[str, ...]
) -> list[str]:
    """The topics of `held` that `grants` (with memberships and public
    namespaces) no longer admit: one trip to the database pool."""
    refused = []
    for topic in held:
        try:
            topics.may_subscribe(user_id=user_id, topic=topic, grants=grants)
        except topics.TopicRefused:
            refused.append(topic)
    return refused
