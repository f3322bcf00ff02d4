"""Topic operations API (SPEC §8 "HTTP"): topics in use, one topic, its
presence, members and history, and a user's topics.

Reading topics needs an API key with `ops` or a staff session; membership
(members, a user's topics) also accepts a key with `topics`. A topic in a
URL is validated by parse_topic: a bad name is 400 `invalid`, a topic of a
namespace that does not exist is 404 `not_found`. Redis reads that fail or
pass BRIDGE_LAYER_TIMEOUT are 503 `unavailable`."""

from __future__ import annotations

import logging

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import (
    ErrorDetail,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import requires
from messaging import topic_presence
from messaging.api import topic_operations
from messaging.api.ops_views import (
    MAX_PAGE,
    OpsView,
    _check_user_id,
    _from_redis,
    _int_param,
)
from messaging.frames import format_time
from messaging.streams import history, reset, topics
from messaging.streams.names import NAMESPACE_RE, PERSONAL_NAMESPACE
from messaging.streams.namespaces import NamespaceRules, namespace_rules
from messaging.streams.topics import TopicRefused

logger = logging.getLogger(__name__)

TOPIC_PATH = OpenApiParameter(
    "topic",
    str,
    OpenApiParameter.PATH,
    description="`<namespace>:<name>` (SPEC §8), e.g. `room:42`; the namespace "
    "`user` is reserved.",
    pattern=r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.@=-][A-Za-z0-9_.:@=-]{0,127}$",
)
USER_PATH = OpenApiParameter("user_id", str, OpenApiParameter.PATH)
PAGE = [
    OpenApiParameter("offset", int, required=False),
    OpenApiParameter("limit", int, required=False),
]


class MembershipView(APIView):
    """Topic membership: an `ops` key, a staff session, or a `topics` key."""

    permission_classes = [requires("ops", "topics")]


def _topic_rules(topic: str) -> NamespaceRules:
    try:
        _, rules = topics.topic_rules(topic)
    except TopicRefused as exc:
        if exc.code == "not_found":
            raise NotFound(exc.message) from None
        raise ValidationError(
            {"topic": [ErrorDetail(exc.message, "invalid_topic")]}
        ) from None
    return rules


def _page(request: Request) -> tuple[int, int]:
    offset = _int_param(request, "offset", default=0)
    limit = _int_param(request, "limit", default=100, maximum=MAX_PAGE, minimum=1)
    return offset, limit


def _namespace_param(request: Request) -> str | None:
    namespace = request.query_params.get("namespace")
    if namespace is None:
        return None
    if not NAMESPACE_RE.match(namespace) or namespace == PERSONAL_NAMESPACE:
        raise ValidationError(
            {
                "namespace": [
                    ErrorDetail(
                        "Must match ^[a-z][a-z0-9_-]{0,31}$ and not be 'user'.",
                        "invalid_namespace",
                    )
                ]
            }
        )
    if namespace_rules(namespace) is None:
        raise NotFound(f"there is no topic namespace '{namespace}'")
    return namespace


class TopicsView(OpsView):
    @extend_schema(
        operation_id="api_topics_list",
        parameters=[OpenApiParameter("namespace", str, required=False), *PAGE],
        responses=inline_serializer(
            "Topics",
            {
                "topics": inline_serializer(
                    "TopicSummary",
                    {
                        "topic": serializers.CharField(),
                        "seq": serializers.IntegerField(allow_null=True),
                        "subscribers": serializers.IntegerField(),
                        "members": serializers.IntegerField(),
                    },
                    many=True,
                ),
                "count": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        """Topics with subscribers, members or kept messages, sorted by name;
        `count` is how many there are in all."""
        namespace = _namespace_param(request)
        offset, limit = _page(request)
        live = _from_redis(topic_presence.active_topics, namespace=namespace)
        names = sorted(set(live) | topic_operations.stored_topics(namespace=namespace))
        page = names[offset : offset + limit]
        subscribers = _from_redis(topic_presence.subscriber_counts, page)
        summaries = topic_operations.topic_summaries(page, subscribers=subscribers)
        return Response({"topics": summaries, "count": len(names)})


class TopicView(OpsView):
    @extend_schema(
        parameters=[TOPIC_PATH],
        responses=inline_serializer(
            "Topic",
            {
                "topic": serializers.CharField(),
                "seq": serializers.IntegerField(allow_null=True),
                "subscribers": serializers.IntegerField(),
                "online_users": serializers.IntegerField(),
                "members": serializers.IntegerField(),
                "namespace": serializers.DictField(),
            },
        ),
    )
    def get(self, request: Request, topic: str) -> Response:
        """One topic. A topic of an existing namespace always answers (a topic
        exists once it has a member, a subscriber or a message; until then
        every number is 0)."""
        rules = _topic_rules(topic)
        subscribers = _from_redis(topic_presence.subscriber_counts, [topic])
        online_users = _from_redis(topic_presence.topic_user_count, topic)
        seqs = history.latest_seqs([topic])
        return Response(
            {
                "topic": topic,
                "seq": topic_operations.topic_seq(topic, rules, seqs),
                "subscribers": subscribers.get(topic, 0),
                "online_users": online_users,
                "members": topic_operations.member_counts([topic]).get(topic, 0),
                "namespace": rules.as_dict(),
            }
        )


class TopicPresenceView(OpsView):
    @extend_schema(
        parameters=[TOPIC_PATH, *PAGE],
        responses=inline_serializer(
            "TopicPresence",
            {
                "users": inline_serializer(
                    "TopicPresenceUser",
                    {
                        "user_id": serializers.CharField(),
                        "connections": serializers.IntegerField(),
                    },
                    many=True,
                ),
                "count": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request, topic: str) -> Response:
        """The users subscribed to the topic, with their live connections;
        `count` is every subscribed user. A namespace with `presence: false`
        does not list its subscribers: 403 `permission_denied` (not an empty
        list, which would say nobody is there)."""
        rules = _topic_rules(topic)
        if not rules.presence:
            raise PermissionDenied(
                f"the namespace '{rules.name}' does not list its subscribers "
                "(presence: false)"
            )
        offset, limit = _page(request)
        users = _from_redis(
            topic_presence.topic_users, topic, offset=offset, limit=limit
        )
        count = _from_redis(topic_presence.topic_user_count, topic)
        return Response(
            {
                "users": [{"user_id": u, "connections": n} for u, n in users],
                "count": count,
            }
        )


class TopicResetView(OpsView):
    @extend_schema(
        request=None,
        parameters=[TOPIC_PATH],
        responses={
            200: inline_serializer(
                "TopicReset", {"deleted": serializers.IntegerField()}
            )
        },
    )
    def post(self, request: Request, topic: str) -> Response:
        """Delete the topic's kept messages (SPEC §9); `deleted` is how many.
        `seq` keeps counting. After commit every subscription of the topic,
        on every instance, ends with `unsubscribed`, reason `reset`; that
        happens on every call, so a retry after a Redis failure ends them."""
        _topic_rules(topic)
        return Response({"deleted": reset.topic_reset(topic=topic)})


class TopicMembersView(MembershipView):
    @extend_schema(
        parameters=[TOPIC_PATH, *PAGE],
        responses=inline_serializer(
            "TopicMembers",
            {
                "members": inline_serializer(
                    "TopicMember",
                    {
                        "user_id": serializers.CharField(),
                        "added_at": serializers.DateTimeField(),
                    },
                    many=True,
                ),
                "count": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request, topic: str) -> Response:
        _topic_rules(topic)
        offset, limit = _page(request)
        page, count = topics.members_page(topic, offset=offset, limit=limit)
        members = [
            {"user_id": user_id, "added_at": format_time(added_at)}
            for user_id, added_at in page
        ]
        return Response({"members": members, "count": count})


class TopicMemberView(MembershipView):
    @extend_schema(
        request=None,
        parameters=[TOPIC_PATH, USER_PATH],
        responses={
            200: inline_serializer("MemberAdded", {"added": serializers.BooleanField()})
        },
    )
    def put(self, request: Request, topic: str, user_id: str) -> Response:
        """Make the user a member; `added` is false when already one."""
        _check_user_id(user_id)
        _topic_rules(topic)
        return Response({"added": topics.member_add(topic=topic, user_id=user_id)})

    @extend_schema(
        request=None,
        parameters=[TOPIC_PATH, USER_PATH],
        responses={
            200: inline_serializer(
                "MemberRemoved", {"removed": serializers.BooleanField()}
            )
        },
    )
    def delete(self, request: Request, topic: str, user_id: str) -> Response:
        """End the membership; `removed` is false when the user was not a
        member. Either way, after commit every connection of the user checks
        again whether it may stay subscribed (SPEC §8: `unsubscribed`,
        reason `removed`): a retry after a Redis failure still ends them."""
        _check_user_id(user_id)
        _topic_rules(topic)
        removed = topics.member_remove(topic=topic, user_id=user_id)
        return Response({"removed": removed})


class UserTopicsView(MembershipView):
    @extend_schema(
        parameters=[USER_PATH],
        responses=inline_serializer(
            "UserTopics",
            {"topics": serializers.ListField(child=serializers.CharField())},
        ),
    )
    def get(self, request: Request, user_id: str) -> Response:
        """The topics the user is a member of, by name."""
        _check_user_id(user_id)
        return Response({"topics": topics.user_topics(user_id)})
