"""POST /api/tokens: mint a WebSocket token for one user id, optionally
granting topics (SPEC §4, §6, §8)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import requires
from accounts.serializers import TokenReplySerializer, TokenRequestSerializer
from accounts.tokens import token_issue


class TokenView(APIView):
    permission_classes = [requires("issue_tokens")]

    @extend_schema(
        request=TokenRequestSerializer, responses={201: TokenReplySerializer}
    )
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = token_issue(
            user_id=serializer.validated_data["user_id"],
            topics=serializer.validated_data.get("topics", ()),
        )
        reply = TokenReplySerializer(
            {"token": issued.token, "expires_at": issued.expires_at}
        )
        return Response(reply.data, status=201)
