"""`DELETE /api/messages/<id>` (SPEC §9 "recall").

Who may recall a message: the API key that pushed it, a key of the public
account that sent it (`from` is its handle), or `ops` (an `ops` key, a staff
session, open mode). Unknown ids (and live-only messages, which were never
stored) are 404 `not_found`; someone else's message is 403
`permission_denied`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import Caller, caller_may
from messaging.models import Message
from messaging.streams import recall


class IsCallerOrStaff(permissions.BasePermission):
    """An API key (or open mode), or a staff session; the message decides the rest."""

    message = "This needs an API key or a staff session."

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        return isinstance(user, Caller) or bool(
            getattr(user, "is_authenticated", False)
            and getattr(user, "is_staff", False)
        )


class MessageView(APIView):
    permission_classes = [IsCallerOrStaff]

    @extend_schema(
        request=None,
        parameters=[
            OpenApiParameter(
                "message_id",
                str,
                OpenApiParameter.PATH,
                description="The message's `id` (a UUID).",
            )
        ],
        responses={
            200: inline_serializer(
                "Recalled",
                {
                    "id": serializers.CharField(),
                    "recalled": serializers.BooleanField(),
                },
            )
        },
    )
    def delete(self, request: Request, message_id: str) -> Response:
        """Recall the message: it stays in history and resume as a tombstone
        (`data: null`, `"recalled": true`), and every recipient's live
        connections (a topic's subscribers) get `{"type": "recall", "id",
        "topic"?}`. Recalling again answers the same and tells them again."""
        message = recall.message_get(message_id)
        if message is None:
            raise NotFound("There is no stored message with this id.")
        if not _may_recall(request, message):
            raise PermissionDenied(
                "Only the key that pushed it, its sender or ops may recall it."
            )
        recall.message_recall(message=message)
        return Response({"id": str(message.pk), "recalled": True})


def _may_recall(request: Request, message: Message) -> bool:
    if caller_may(request, "ops"):
        return True
    user = request.user
    if not isinstance(user, Caller):
        return False
    if user.key_id is not None and user.key_id == message.pushed_by_key:
        return True
    return user.handle is not None and user.handle == message.sender
