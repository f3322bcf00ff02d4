"""History for users (SPEC §9 "History for users, recall, reset").

A user reads its own personal stream, and the topics it may subscribe to,
with its WebSocket token (`Authorization: Bearer <token>`, as POST
/api/tokens mints them): `GET /api/me/messages` and
`GET /api/topics/<topic>/messages`, and its unread counts with
`GET /api/me/unread` (SPEC §9 "Reading and receipts"). A token never
reads another user's stream. API keys with `ops` and staff sessions read any
topic as before.

In open mode (development; SPEC §4 trusts `user_id`) there are no tokens:
`GET /api/me/messages?user_id=<id>` names the user, and every topic is
readable.

Pages go forwards with `after_seq` (`next_after_seq`) or backwards with
`before_seq` (`next_before_seq`, "load older messages"); a user's `limit` is
at most 100.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.exceptions import (
    ErrorDetail,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import (
    OPEN_CALLER,
    ApiKeyAuthentication,
    IsTokenUser,
    OpenModeAuthentication,
    SessionAuthentication,
    TokenUser,
    UserTokenAuthentication,
    requires,
)
from messaging.api.ops_views import (
    HISTORY_PARAMETERS,
    HISTORY_REPLY,
    UNREAD_REPLY,
    _check_user_id,
    history_reply,
)
from messaging.api.topic_views import TOPIC_PATH, _topic_rules
from messaging.streams import reading, topics
from messaging.streams.names import personal_stream
from messaging.streams.topics import TopicRefused

# SPEC §9: a user's page is at most 100 messages.
USER_MAX_PAGE = 100

AUTHENTICATION = [
    OpenModeAuthentication,
    UserTokenAuthentication,
    ApiKeyAuthentication,
    SessionAuthentication,
]


class IsOpenMode(permissions.BasePermission):
    """BRIDGE_AUTH_MODE=open: the caller names the user (`?user_id=`)."""

    def has_permission(self, request: Request, view) -> bool:
        return request.user is OPEN_CALLER


class MeMessagesView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [IsTokenUser | IsOpenMode]

    @extend_schema(
        parameters=[
            *HISTORY_PARAMETERS,
            OpenApiParameter(
                "user_id",
                str,
                required=False,
                description="Open mode only: the user whose messages to read "
                "(required there). With a token it may only name the token's "
                "own user.",
            ),
        ],
        responses=HISTORY_REPLY,
    )
    def get(self, request: Request) -> Response:
        """The caller's personal stream `user:<id>`, as the ops history API."""
        user_id = _me(request)
        return history_reply(request, personal_stream(user_id), max_limit=USER_MAX_PAGE)


class MeUnreadView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [IsTokenUser | IsOpenMode]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "user_id",
                str,
                required=False,
                description="Open mode only: the user (required there).",
            )
        ],
        responses=UNREAD_REPLY,
    )
    def get(self, request: Request) -> Response:
        """SPEC §9: the caller's read positions and unread counts."""
        return Response(reading.unread_summary(_me(request)))


class TopicMessagesView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [requires("ops") | IsTokenUser]

    @extend_schema(
        parameters=[TOPIC_PATH, *HISTORY_PARAMETERS], responses=HISTORY_REPLY
    )
    def get(self, request: Request, topic: str) -> Response:
        """The topic's kept messages, as the user history API: for `ops`, or
        for a user token whose user may subscribe to the topic (SPEC §8
        policies: public, member, or granted by the token)."""
        if isinstance(request.user, TokenUser):
            _may_read(request.user, topic)
            return history_reply(request, topic, max_limit=USER_MAX_PAGE)
        _topic_rules(topic)
        return history_reply(request, topic)


def _me(request: Request) -> str:
    named = request.query_params.get("user_id")
    user = request.user
    if isinstance(user, TokenUser):
        if named is not None and named != user.user_id:
            raise PermissionDenied("A token reads only its own user's messages.")
        return user.user_id
    if named is None:
        raise ValidationError(
            {"user_id": [ErrorDetail("Required in open mode.", "required")]}
        )
    _check_user_id(named)
    return named


def _may_read(user: TokenUser, topic: str) -> None:
    try:
        topics.may_subscribe(user_id=user.user_id, topic=topic, grants=user.grants)
    except TopicRefused as refused:
        if refused.code == "not_found":
            raise NotFound(refused.message) from None
        if refused.code == "forbidden":
            raise PermissionDenied(refused.message) from None
        raise ValidationError(
            {"topic": [ErrorDetail(refused.message, "invalid_topic")]}
        ) from None
