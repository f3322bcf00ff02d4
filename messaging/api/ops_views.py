"""Operations API (SPEC §6): stats, presence, remote disconnect, history.

Every endpoint needs an API key with `ops`, or a staff session."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import requires
from accounts.identifiers import is_user_id
from bridge_project.api_errors import ServiceUnavailable
from messaging.api import operations
from messaging.streams import history, publish, reading
from messaging.streams.names import personal_stream

MAX_PAGE = 1000


class OpsView(APIView):
    permission_classes = [requires("ops")]


class StatsView(OpsView):
    @extend_schema(
        responses=inline_serializer(
            "Stats",
            {
                "total_connections": serializers.IntegerField(),
                "online_users": serializers.IntegerField(),
                "messages_pushed": serializers.IntegerField(),
                "messages_delivered": serializers.IntegerField(),
                "errors": serializers.IntegerField(),
                "topics": serializers.IntegerField(),
                "subscriptions": serializers.IntegerField(),
                "instances": serializers.ListField(child=serializers.DictField()),
            },
        )
    )
    def get(self, request: Request) -> Response:
        return Response(_from_redis(operations.cluster_stats))


class OnlineUsersView(OpsView):
    @extend_schema(
        parameters=[
            OpenApiParameter("offset", int, required=False),
            OpenApiParameter("limit", int, required=False),
        ],
        responses=inline_serializer(
            "OnlineUsers",
            {
                "users": serializers.ListField(child=serializers.DictField()),
                "count": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        offset = _int_param(request, "offset", default=0)
        limit = _int_param(request, "limit", default=100, maximum=MAX_PAGE)
        return Response(
            _from_redis(operations.online_users_page, offset=offset, limit=limit)
        )


class UserConnectionsView(OpsView):
    @extend_schema(
        responses=inline_serializer(
            "Connections",
            {"connections": serializers.ListField(child=serializers.DictField())},
        )
    )
    def get(self, request: Request, user_id: str) -> Response:
        _check_user_id(user_id)
        return Response(
            {"connections": _from_redis(operations.user_connections, user_id)}
        )


class UserDisconnectView(OpsView):
    @extend_schema(
        request=None,
        responses=inline_serializer(
            "Disconnected", {"closed": serializers.IntegerField()}
        ),
    )
    def post(self, request: Request, user_id: str) -> Response:
        _check_user_id(user_id)
        return Response({"closed": _from_redis(operations.disconnect_user, user_id)})


HISTORY_PARAMETERS = [
    OpenApiParameter(
        "after_seq",
        int,
        required=False,
        description="Messages with seq above this, oldest first (default 0). "
        "The reply's `next_after_seq` is the next page's, null on the last.",
    ),
    OpenApiParameter(
        "before_seq",
        int,
        required=False,
        description='Instead of after_seq, for "load older messages": the '
        "newest `limit` messages with seq below this, oldest first. The reply's "
        "`next_before_seq` is the next older page's, null when none is older.",
    ),
    OpenApiParameter("limit", int, required=False),
]
HISTORY_REPLY = inline_serializer(
    "History",
    {
        "messages": serializers.ListField(child=serializers.DictField()),
        "next_after_seq": serializers.IntegerField(allow_null=True, required=False),
        "next_before_seq": serializers.IntegerField(allow_null=True, required=False),
    },
)


def history_reply(
    request: Request, stream: str, *, max_limit: int = MAX_PAGE
) -> Response:
    """A page of a stream's kept messages, oldest first (SPEC §6, §8, §9):
    `after_seq` pages forwards (`next_after_seq`), `before_seq` backwards
    (`next_before_seq`); naming both is a 400."""
    if "after_seq" in request.query_params and "before_seq" in request.query_params:
        raise ValidationError(
            {"before_seq": ["Give after_seq or before_seq, not both."]}
        )
    limit = _int_param(request, "limit", default=100, maximum=max_limit, minimum=1)
    if "before_seq" in request.query_params:
        before_seq = _int_param(request, "before_seq", default=0, minimum=1)
        messages, next_before = history.messages_page_before(
            stream, before_seq=before_seq, limit=limit
        )
        return Response({"messages": messages, "next_before_seq": next_before})
    after_seq = _int_param(request, "after_seq", default=0)
    messages, next_after = history.messages_page(
        stream, after_seq=after_seq, limit=limit
    )
    return Response({"messages": messages, "next_after_seq": next_after})


class UserMessagesView(OpsView):
    @extend_schema(parameters=HISTORY_PARAMETERS, responses=HISTORY_REPLY)
    def get(self, request: Request, user_id: str) -> Response:
        _check_user_id(user_id)
        return history_reply(request, personal_stream(user_id))


_POSITION_FIELDS = {
    "read_seq": serializers.IntegerField(),
    "unread": serializers.IntegerField(),
}
UNREAD_REPLY = inline_serializer(
    "Unread",
    {
        "personal": inline_serializer("UnreadPersonal", _POSITION_FIELDS),
        "topics": serializers.ListField(
            child=inline_serializer(
                "UnreadTopic", {"topic": serializers.CharField(), **_POSITION_FIELDS}
            )
        ),
    },
)


class UserUnreadView(OpsView):
    @extend_schema(responses=UNREAD_REPLY)
    def get(self, request: Request, user_id: str) -> Response:
        """SPEC §9: the user's read position and unread count in its personal
        stream and in every topic it is a member of."""
        _check_user_id(user_id)
        return Response(reading.unread_summary(user_id))


def _from_redis(function, *args, **kwargs):
    try:
        return async_to_sync(operations.with_deadline)(function, *args, **kwargs)
    except publish.LayerUnavailable as exc:
        raise ServiceUnavailable() from exc


def _check_user_id(user_id: str) -> None:
    if not is_user_id(user_id):
        raise ValidationError(
            {"user_id": ["Must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$."]}
        )


def _int_param(
    request: Request,
    name: str,
    *,
    default: int,
    minimum: int = 0,
    maximum: int = 2**63 - 1,
) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    valid = len(raw) <= 19 and raw.isascii() and raw.isdigit()
    if not valid or not minimum <= int(raw) <= maximum:
        raise ValidationError(
            {name: [f"Must be an integer from {minimum} to {maximum}."]}
        )
    return int(raw)
