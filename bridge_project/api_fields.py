"""DRF fields that refuse what DRF would quietly coerce (SPEC §6 `invalid`)."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from accounts.identifiers import USER_ID_RE


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of stringifying them."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class ParsedJSONField(serializers.JSONField):
    """Any JSON value of a body that StrictJSONParser (the API's only parser)
    has already parsed.

    DRF's JSONField encodes each value again only to learn that it can be
    encoded; what the strict parser produced always can (finite numbers,
    string keys, no lone surrogates). A batch of 100 paid that twice per
    message, for the item and for its `data`."""

    def to_internal_value(self, data: Any) -> Any:
        return data


def user_id_field(**kwargs: Any) -> StrictCharField:
    return StrictCharField(
        max_length=64,
        trim_whitespace=False,
        validators=[
            RegexValidator(
                USER_ID_RE,
                message="Must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$.",
                code="invalid_user_id",
            )
        ],
        **kwargs,
    )
