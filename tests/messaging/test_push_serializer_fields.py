"""PushSerializer runs DRF's field loop only over the fields an item gives (or
that have a default): it must accept, refuse and report exactly as DRF's full
loop over every field does, for any item."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from messaging.api.serializers import PushSerializer


class EveryFieldPushSerializer(PushSerializer):
    """PushSerializer with DRF's own loop over every writable field."""

    @property
    def _writable_fields(self):
        return serializers.Serializer._writable_fields.fget(self)


FIELD_NAMES = sorted(PushSerializer().fields)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(
        ["", " ", "user-1", "room:lobby", "ci.build", "Bad Event", "s-1", "x" * 200]
    ),
    st.text(max_size=8),
    st.lists(st.sampled_from(["user-1", "user-2", "", 7]), max_size=3),
    st.dictionaries(
        st.sampled_from(["text", "n"]), st.integers() | st.text(), max_size=2
    ),
)
ITEMS = st.dictionaries(st.sampled_from([*FIELD_NAMES, "unknown"]), VALUES, max_size=6)


def outcome(serializer: PushSerializer, item: dict):
    try:
        return "valid", serializer.validate_item(dict(item))
    except serializers.ValidationError as exc:
        return "invalid", with_codes(serializers.as_serializer_error(exc))


def with_codes(detail):
    """An error detail with each message's code beside it (== ignores codes)."""
    if isinstance(detail, dict):
        return {name: with_codes(inner) for name, inner in detail.items()}
    if isinstance(detail, list):
        return [with_codes(inner) for inner in detail]
    return str(detail), getattr(detail, "code", None)


@settings(max_examples=400, deadline=None)
@given(item=ITEMS)
def test_any_item_gets_the_outcome_of_drfs_full_field_loop(item):
    narrowed, full = (
        outcome(PushSerializer(), item),
        outcome(EveryFieldPushSerializer(), item),
    )
    assert narrowed == full
    if full[0] == "invalid":
        assert list(narrowed[1]) == list(full[1]), "errors in the same order"


@pytest.mark.parametrize(
    "item",
    [
        {"user_id": "user-1", "message": "hi"},
        {"topic": "room:lobby", "data": {"text": "hi"}, "persist": False},
        {"user_ids": ["user-1", "user-1"], "message": "hi"},
        {"user_id": "user-1", "event": "Bad Event", "message": "hi"},
        {"user_id": "user-1", "stream_id": "s-1", "delta": "part"},
        {"message": "no target"},
    ],
)
def test_one_serializer_validates_a_batch_of_items_as_fresh_ones_do(item):
    reused = PushSerializer()
    outcome(reused, {"user_id": "user-9", "idempotency_key": "k", "message": "x"})
    assert outcome(reused, item) == outcome(EveryFieldPushSerializer(), item)
