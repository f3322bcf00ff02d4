"""The one place that decides who receives a message (SPEC §1, §2, §6).

The HTTP push path calls `decide_recipients`; the WebSocket client path calls
`client_message_recipients`, which adds SPEC §2's rules and then does the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DIRECT = "direct"
MENTION = "mention"


@dataclass(frozen=True)
class Recipient:
    user_id: str
    via: str
    # The handles whose mention routed this copy here; empty on a direct copy.
    mentions: tuple[str, ...] = ()


class RoutingRefused(Exception):
    """A client message nobody may receive; `code` is SPEC §2's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decide_recipients(
    *,
    targets: Iterable[str],
    mentioned: Iterable[str] = (),
    sender: str | None = None,
) -> list[Recipient]:
    """Targets first, in request order, then mentioned accounts not targeted.

    A user both targeted and mentioned gets one (direct) copy. A mention never
    routes a message back to its own sender; an explicit target is honoured.
    """
    chosen: dict[str, Recipient] = {}
    for user_id in targets:
        chosen.setdefault(user_id, Recipient(user_id=user_id, via=DIRECT))
    for handle in mentioned:
        if handle != sender and handle not in chosen:
            chosen[handle] = Recipient(user_id=handle, via=MENTION, mentions=(handle,))
    return list(chosen.values())


def client_message_recipients(
    *,
    sender: str,
    sender_is_public: bool,
    to: str | None,
    to_public_handle: str | None,
    mentioned: Iterable[str],
) -> list[Recipient]:
    """Who receives a `message` frame typed by `sender` (SPEC §2).

    Mentioned public accounts, plus `to` when it is a public account; a public
    account may address anyone with `to` (a bot replying). Raises RoutingRefused.
    """
    targets: list[str] = []
    if to is not None and to != sender:
        if to_public_handle is not None:
            targets.append(to_public_handle)
        elif sender_is_public:
            targets.append(to)
        else:
            raise RoutingRefused(
                "forbidden", "only public accounts may be addressed with 'to'"
            )
    recipients = decide_recipients(targets=targets, mentioned=mentioned, sender=sender)
    if not recipients:
        raise RoutingRefused(
            "no_recipient", "the message mentions no active public account"
        )
    return recipients


def topic_message_recipients(
    *, sender: str, mentioned: Iterable[str]
) -> list[Recipient]:
    """Personal copies of a `message` frame published to a topic (SPEC §8): the
    mentioned bots, never the sender; the topic itself is the audience."""
    return decide_recipients(targets=(), mentioned=mentioned, sender=sender)


def signal_recipient(
    *,
    sender: str,
    sender_is_public: bool,
    to: str,
    to_public_handle: str | None,
) -> str:
    """Who receives a `signal` frame sent with `to` (SPEC §9): the rules of a
    `message` with `to` and no mentions. Raises RoutingRefused."""
    if to == sender:
        raise RoutingRefused("no_recipient", "a signal to yourself reaches nobody")
    recipients = client_message_recipients(
        sender=sender,
        sender_is_public=sender_is_public,
        to=to,
        to_public_handle=to_public_handle,
        mentioned=(),
    )
    return recipients[0].user_id
