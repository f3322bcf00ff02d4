"""A JSON parser that turns every malformed body into a clean 400 or 413."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from bridge_project import strict_json
from bridge_project.api_errors import PayloadTooLarge


class StrictJSONParser(BaseParser):
    """application/json only, strict UTF-8, bounded size and nesting.

    DRF's JSONParser decodes with a lenient reader and lets RecursionError
    (`'[' * 100000`) escape as a 500; both are refused here.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.BRIDGE_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        if request is not None and _declared_length(request) > limit:
            raise PayloadTooLarge(f"The body is over {limit} bytes.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The body is over {limit} bytes.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("The body is not UTF-8.") from None
        try:
            return strict_json.loads(text)
        except ValueError as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
