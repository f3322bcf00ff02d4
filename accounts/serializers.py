from rest_framework import serializers

from accounts.identifiers import is_topic_grant
from accounts.tokens import MAX_TOPIC_GRANTS
from bridge_project.api_fields import StrictCharField, user_id_field


class TopicGrantField(StrictCharField):
    """A topic `<namespace>:<name>` or `<namespace>:*` (SPEC §8 "Tokens")."""

    default_error_messages = {
        **StrictCharField.default_error_messages,
        "invalid_topic": "Must be a topic '<namespace>:<name>' or '<namespace>:*'.",
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not is_topic_grant(value):
            self.fail("invalid_topic")
        return value


class TokenRequestSerializer(serializers.Serializer):
    user_id = user_id_field()
    topics = serializers.ListField(
        child=TopicGrantField(trim_whitespace=False),
        required=False,
        max_length=MAX_TOPIC_GRANTS,
        help_text="Topics the token grants subscription to; 'ns:*' grants "
        "every topic of a namespace.",
    )


class TokenReplySerializer(serializers.Serializer):
    token = serializers.CharField()
    # SPEC's time format: UTC with milliseconds and a Z.
    expires_at = serializers.DateTimeField(format="%Y-%m-%dT%H:%M:%S.000Z")
