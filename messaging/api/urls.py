from django.urls import path

from messaging.api import ops_views, views

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
]
