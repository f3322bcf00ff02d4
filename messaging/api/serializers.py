"""Input and output shapes of the push API (SPEC §6)."""

from __future__ import annotations

import functools
import json
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from rest_framework import serializers

from accounts.identifiers import EVENT_RE
from bridge_project.api_fields import (
    ParsedJSONField,
    StrictBooleanField,
    StrictCharField,
    user_id_field,
)
from messaging.streams.delivery import PushRequest
from messaging.streams.names import InvalidTopic, parse_topic

MAX_TARGETS = 1000


class PushSerializer(serializers.Serializer):
    user_id = user_id_field(required=False)
    user_ids = serializers.ListField(
        child=user_id_field(), required=False, min_length=1, max_length=MAX_TARGETS
    )
    broadcast = StrictBooleanField(required=False)
    # SPEC §8: a topic `<namespace>:<name>`; whether its namespace exists is
    # the view's question (404 for a push, 400 per item in a batch).
    topic = StrictCharField(required=False, trim_whitespace=False)
    event = StrictCharField(
        required=False,
        trim_whitespace=False,
        default="message",
        validators=[
            RegexValidator(
                EVENT_RE,
                message="Must match ^[a-z][a-z0-9_.:-]{0,63}$.",
                code="invalid_event",
            )
        ],
    )
    data = ParsedJSONField(required=False, allow_null=True)
    message = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    sender = user_id_field(required=False, allow_null=True)
    persist = StrictBooleanField(required=False, default=True)
    idempotency_key = StrictCharField(
        required=False, min_length=1, max_length=128, trim_whitespace=False
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _require_known_fields(self, data, "A push")
        return super().to_internal_value(data)

    def validate_user_ids(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError(
                "User ids must be distinct.", code="duplicate"
            )
        return value

    def validate_topic(self, value: str) -> str:
        try:
            parse_topic(value)
        except InvalidTopic as exc:
            raise serializers.ValidationError(str(exc), code="invalid_topic") from None
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("user_id", "user_ids", "topic") if name in attrs]
        if attrs.get("broadcast") is True:
            given.append("broadcast")
        if len(given) != 1:
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        serializers.ErrorDetail(
                            "Give exactly one of user_id, user_ids, topic or "
                            "broadcast: true.",
                            "target",
                        )
                    ]
                }
            )
        has_data = "data" in self.initial_data
        if has_data == ("message" in attrs):
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        serializers.ErrorDetail(
                            "Give exactly one of data or message.", "payload"
                        )
                    ]
                }
            )
        payload = attrs.get("data") if has_data else {"text": attrs["message"]}
        limit = settings.BRIDGE_MAX_MESSAGE_BYTES
        if _encoded_size(payload) > limit:
            field = "data" if has_data else "message"
            raise serializers.ValidationError(
                {
                    field: [
                        serializers.ErrorDetail(
                            f"Serialized, this is over {limit} bytes.", "too_large"
                        )
                    ]
                }
            )
        attrs["payload"] = payload
        return attrs

    def push_request(self) -> PushRequest:
        return push_request_from(self.validated_data)

    def validate_item(self, data: Any) -> dict[str, Any]:
        """Validate one push of a batch with this instance; raises ValidationError.

        A batch reuses one instance because DRF builds (deep-copies) a
        serializer's fields per instance, which cost more than validating."""
        self.initial_data = data
        return self.run_validation(data)


def push_request_from(attrs: dict[str, Any]) -> PushRequest:
    if "user_id" in attrs:
        targets: tuple[str, ...] = (attrs["user_id"],)
    else:
        targets = tuple(attrs.get("user_ids", ()))
    broadcast = attrs.get("broadcast") is True
    return PushRequest(
        targets=targets,
        event=attrs["event"],
        data=attrs["payload"],
        sender=attrs.get("sender"),
        persist=attrs["persist"] and not broadcast,
        broadcast=broadcast,
        text=mention_text(attrs["payload"]),
        idempotency_key=attrs.get("idempotency_key"),
        topic=attrs.get("topic"),
    )


def _require_known_fields(
    serializer: serializers.Serializer, data: Any, what: str
) -> None:
    """A body must be an object of known fields: a typo is an error, not ignored."""
    if not isinstance(data, dict):
        raise serializers.ValidationError(
            {"non_field_errors": [f"{what} must be a JSON object."]}, code="invalid"
        )
    unknown = sorted(data.keys() - _field_names(type(serializer)))
    if unknown:
        raise serializers.ValidationError(
            {
                name: [serializers.ErrorDetail("Unknown field.", "unknown_field")]
                for name in unknown
            }
        )


@functools.cache
def _field_names(serializer_class: type[serializers.Serializer]) -> frozenset[str]:
    # Per class, not per item: a batch checks every item against the same set.
    return frozenset(serializer_class().fields)


def mention_text(payload: Any) -> str | None:
    """Mentions are read from `message`, i.e. `data.text` (SPEC §6)."""
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        return payload["text"]
    return None


def _encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


class BatchSerializer(serializers.Serializer):
    messages = serializers.ListField(child=ParsedJSONField(), min_length=1)

    def validate_messages(self, items: list[Any]) -> list[dict[str, Any]]:
        limit = settings.BRIDGE_MAX_BATCH
        if len(items) > limit:
            raise serializers.ValidationError(
                f"At most {limit} messages per batch.", code="max_length"
            )
        item_serializer = PushSerializer()
        validated, errors = [], {}
        for index, item in enumerate(items):
            try:
                validated.append(item_serializer.validate_item(item))
            except serializers.ValidationError as exc:
                errors[str(index)] = serializers.as_serializer_error(exc)
        seen: dict[str, int] = {}
        for index, attrs in enumerate(validated):
            key = attrs.get("idempotency_key")
            if key is None:
                continue
            if key in seen:
                errors[str(index)] = {
                    "idempotency_key": [
                        serializers.ErrorDetail(
                            f"Repeats the key of message {seen[key]}.", "duplicate"
                        )
                    ]
                }
            seen.setdefault(key, index)
        if errors:
            raise serializers.ValidationError(errors)
        return validated

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _require_known_fields(self, data, "A batch")
        return super().to_internal_value(data)

    def push_requests(self) -> list[PushRequest]:
        return [push_request_from(attrs) for attrs in self.validated_data["messages"]]


class RecipientReplySerializer(serializers.Serializer):
    user_id = serializers.CharField()
    seq = serializers.IntegerField(allow_null=True)
    online = serializers.BooleanField()
    connections = serializers.IntegerField()
    via = serializers.CharField(required=False)


class PushReplySerializer(serializers.Serializer):
    """A push's reply: to users (`recipients`), a broadcast (`broadcast`,
    `online_users`) or a topic (`topic`, `seq`, `subscribers`, and the
    mention copies in `recipients`; SPEC §8)."""

    id = serializers.UUIDField()
    recipients = RecipientReplySerializer(many=True, required=False)
    broadcast = serializers.BooleanField(required=False)
    online_users = serializers.IntegerField(required=False)
    topic = serializers.CharField(required=False)
    seq = serializers.IntegerField(
        required=False, allow_null=True, help_text="The topic's seq; null: live-only."
    )
    subscribers = serializers.IntegerField(
        required=False, help_text="Live subscriptions to the topic, cluster-wide."
    )


class BatchReplySerializer(serializers.Serializer):
    results = PushReplySerializer(many=True)
