"""What a WebSocket handshake asks for, checked in SPEC §2's order."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from accounts.identifiers import is_user_id

MAX_LAST_SEQ = 2**63 - 1


class HandshakeRefused(Exception):
    """Close the socket with `close_code` after an error frame with `error_code`."""

    def __init__(self, close_code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class Handshake:
    user_id: str
    # None: live messages only; N: first replay every kept message with seq > N.
    last_seq: int | None


def parse_handshake(query_string: bytes) -> Handshake:
    """Check the query's syntax (4400); authentication comes after this."""
    try:
        params = parse_qs(query_string.decode("utf-8", errors="strict"))
    except UnicodeDecodeError:
        raise HandshakeRefused(
            4400, "bad_request", "the query string is not UTF-8"
        ) from None
    user_id = _single(params, "user_id")
    if user_id is None or not is_user_id(user_id):
        raise HandshakeRefused(
            4400,
            "bad_request",
            "user_id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        )
    return Handshake(user_id=user_id, last_seq=_last_seq(params))


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise HandshakeRefused(4400, "bad_request", f"{name} is given more than once")
    return values[0]


def _last_seq(params: dict[str, list[str]]) -> int | None:
    raw = _single(params, "last_seq")
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_LAST_SEQ:
        raise HandshakeRefused(
            4400, "bad_request", "last_seq must be a non-negative integer"
        )
    return int(raw)
