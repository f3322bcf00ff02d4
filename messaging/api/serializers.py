"""Input and output shapes of the push API (SPEC §6)."""

from __future__ import annotations

import functools
import json
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from rest_framework import serializers

from accounts.identifiers import EVENT_RE, STREAM_ID_RE
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
    # SPEC §9: a part of a message sent in parts, instead of data/message.
    stream_id = StrictCharField(
        required=False,
        trim_whitespace=False,
        validators=[
            RegexValidator(
                STREAM_ID_RE,
                message="Must match ^[A-Za-z0-9_.:-]{1,64}$.",
                code="invalid_stream_id",
            )
        ],
    )
    delta = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    final = StrictBooleanField(required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _require_known_fields(self, data, "A push")
        self._item_fields = data.keys()
        return super().to_internal_value(data)

    @property
    def _writable_fields(self) -> list[serializers.Field]:
        """The fields DRF's `to_internal_value` runs for this item: those it
        gives, those with a default, and required ones. For an absent optional
        field without a default DRF's loop would only raise and catch
        SkipField, so leaving it out gives the same result, the same errors in
        the same order, at half the cost per item (a batch validates up to a
        thousand). tests/messaging/test_push_serializer_fields.py checks that
        the two agree."""
        given = self._item_fields
        return [
            field
            for field in self._fields_in_order
            if field.field_name in given
            or field.required
            or field.default is not serializers.empty
        ]

    @functools.cached_property
    def _fields_in_order(self) -> list[serializers.Field]:
        return [field for field in self.fields.values() if not field.read_only]

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
            raise _invalid(
                "non_field_errors",
                "Give exactly one of user_id, user_ids, topic or broadcast: true.",
                "target",
            )
        if "stream_id" in attrs:
            return _validate_stream_part(attrs, has_data="data" in self.initial_data)
        for name in ("delta", "final"):
            if name in attrs:
                raise _invalid(name, "Goes with stream_id (SPEC §9).", "stream_only")
        has_data = "data" in self.initial_data
        if has_data == ("message" in attrs):
            raise _invalid(
                "non_field_errors", "Give exactly one of data or message.", "payload"
            )
        payload = attrs.get("data") if has_data else {"text": attrs["message"]}
        limit = settings.BRIDGE_MAX_MESSAGE_BYTES
        if _encoded_size(payload) > limit:
            field = "data" if has_data else "message"
            raise _invalid(
                field, f"Serialized, this is over {limit} bytes.", "too_large"
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


def _invalid(field: str, message: str, code: str) -> serializers.ValidationError:
    return serializers.ValidationError(
        {field: [serializers.ErrorDetail(message, code)]}
    )


def _validate_stream_part(attrs: dict[str, Any], *, has_data: bool) -> dict[str, Any]:
    """SPEC §9 over HTTP: `stream_id` and `delta` (and `final: true` on the
    last part, which may add `data` fields), to one user_id or one topic."""
    if "user_ids" in attrs or "broadcast" in attrs:
        raise _invalid(
            "non_field_errors",
            "A streamed message goes to one user_id or one topic.",
            "target",
        )
    if "message" in attrs:
        raise _invalid("message", "A stream part carries delta instead.", "payload")
    if "idempotency_key" in attrs:
        raise _invalid(
            "idempotency_key", "Stream parts cannot be replayed.", "stream_part"
        )
    final = attrs.get("final") is True
    delta = attrs.setdefault("delta", "" if final else None)
    if not delta and not final:
        raise _invalid("delta", "A part that is not final needs a delta.", "required")
    limit = settings.BRIDGE_MAX_MESSAGE_BYTES
    if len(delta.encode("utf-8")) > limit:
        raise _invalid("delta", f"Over {limit} bytes.", "too_large")
    data = attrs.get("data") if has_data else None
    if has_data and not (final and isinstance(data, dict)):
        raise _invalid("data", "Only the final part may add data: an object.", "data")
    if data is not None and _encoded_size(data) > limit:
        raise _invalid("data", f"Serialized, this is over {limit} bytes.", "too_large")
    attrs["final"] = final
    return attrs


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
                attrs = item_serializer.validate_item(item)
            except serializers.ValidationError as exc:
                errors[str(index)] = serializers.as_serializer_error(exc)
                continue
            if "stream_id" in attrs:
                errors[str(index)] = {
                    "stream_id": [
                        serializers.ErrorDetail(
                            "Stream parts go to POST /sse/push, one per request.",
                            "stream_part",
                        )
                    ]
                }
            validated.append(attrs)
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
    stream_id = serializers.CharField(
        required=False, help_text="A part of a message sent in parts (SPEC §9)."
    )
    index = serializers.IntegerField(
        required=False, allow_null=True, help_text="The part's index; null: no delta."
    )
    final = serializers.BooleanField(
        required=False, help_text="The message was stored (its seq is in the reply)."
    )


class BatchReplySerializer(serializers.Serializer):
    results = PushReplySerializer(many=True)
