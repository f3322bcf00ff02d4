from rest_framework import serializers

from bridge_project.api_fields import user_id_field


class TokenRequestSerializer(serializers.Serializer):
    user_id = user_id_field()


class TokenReplySerializer(serializers.Serializer):
    token = serializers.CharField()
    # SPEC's time format: UTC with milliseconds and a Z.
    expires_at = serializers.DateTimeField(format="%Y-%m-%dT%H:%M:%S.000Z")
