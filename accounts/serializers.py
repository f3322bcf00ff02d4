from rest_framework import serializers

from bridge_project.api_fields import user_id_field


class TokenRequestSerializer(serializers.Serializer):
    user_id = user_id_field()


class TokenReplySerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
