from django.urls import path, register_converter

from messaging.api import ops_views, recall_views, topic_views, user_views, views


class TopicConverter:
    """A topic in a path: it may hold ':', '@', '=' and '.' (SPEC §8), so
    anything up to the next '/'; the view validates it (400, or 404 for an
    unknown namespace) instead of the URL resolver answering 404 for a typo."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TopicConverter, "topic")

urlpatterns = [
    path("sse/push", views.PushView.as_view(), name="push"),
    path("sse/push/batch", views.PushBatchView.as_view(), name="push-batch"),
    path("api/stats", ops_views.StatsView.as_view(), name="stats"),
    path("api/users/online", ops_views.OnlineUsersView.as_view(), name="online"),
    path(
        "api/users/<str:user_id>/connections",
        ops_views.UserConnectionsView.as_view(),
        name="user-connections",
    ),
    path(
        "api/users/<str:user_id>/disconnect",
        ops_views.UserDisconnectView.as_view(),
        name="user-disconnect",
    ),
    path(
        "api/users/<str:user_id>/messages",
        ops_views.UserMessagesView.as_view(),
        name="user-messages",
    ),
    path(
        "api/users/<str:user_id>/unread",
        ops_views.UserUnreadView.as_view(),
        name="user-unread",
    ),
    path(
        "api/users/<str:user_id>/topics",
        topic_views.UserTopicsView.as_view(),
        name="user-topics",
    ),
    path(
        "api/messages/<str:message_id>",
        recall_views.MessageView.as_view(),
        name="message",
    ),
    path("api/me/messages", user_views.MeMessagesView.as_view(), name="me-messages"),
    path("api/me/unread", user_views.MeUnreadView.as_view(), name="me-unread"),
    path("api/topics", topic_views.TopicsView.as_view(), name="topics"),
    path("api/topics/<topic:topic>", topic_views.TopicView.as_view(), name="topic"),
    path(
        "api/topics/<topic:topic>/presence",
        topic_views.TopicPresenceView.as_view(),
        name="topic-presence",
    ),
    path(
        "api/topics/<topic:topic>/members",
        topic_views.TopicMembersView.as_view(),
        name="topic-members",
    ),
    path(
        "api/topics/<topic:topic>/members/<str:user_id>",
        topic_views.TopicMemberView.as_view(),
        name="topic-member",
    ),
    path(
        "api/topics/<topic:topic>/reset",
        topic_views.TopicResetView.as_view(),
        name="topic-reset",
    ),
    path(
        "api/topics/<topic:topic>/messages",
        user_views.TopicMessagesView.as_view(),
        name="topic-messages",
    ),
]
