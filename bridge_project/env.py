"""Helpers that read one environment variable each and fail loudly.

Only ``settings.py`` calls these. A malformed value raises ``ImproperlyConfigured``
naming the variable and the value, so start-up stops with a message an operator
can act on (SPEC §7).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from accounts.identifiers import NAMESPACE_RE, PERSONAL_NAMESPACE
from accounts.jwt_keys import parse_key

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    return (os.environ if environ is None else environ).get(name)


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(
    name: str, default: bool, environ: Mapping[str, str] | None = None
) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be a boolean (1/0, true/false), got {value!r}"
    )


def env_int(
    name: str,
    default: int,
    *,
    minimum: int = 0,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be an integer, got {value!r}"
        ) from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float = 0.0,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {value!r}")
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_list(
    name: str, default: list[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """A comma-separated list; blanks around items and empty items are dropped."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(
    name: str,
    default: str,
    choices: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
) -> str:
    value = env_str(name, default, environ).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(
            f"{name} must be one of {', '.join(choices)}, got {value!r}"
        )
    return value


def env_rate(
    name: str, default: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """A DRF throttle rate such as "100/minute"; "none" means no limit."""
    value = env_str(name, default, environ).strip()
    if value.lower() == "none":
        return None
    count, _, period = value.partition("/")
    if not count.isdigit() or period[:1] not in ("s", "m", "h", "d"):
        raise ImproperlyConfigured(
            f"{name} must look like 100/minute (or none), got {value!r}"
        )
    return value


def env_optional(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A string, or None when unset or blank."""
    value = (_raw(name, environ) or "").strip()
    return value or None


def env_url(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """An http(s) URL, or None when unset or blank."""
    value = env_optional(name, environ)
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not sep or not rest.strip("/"):
        raise ImproperlyConfigured(f"{name} must be an http(s) URL, got {value!r}")
    return value


def env_jwt_keys(
    name: str, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """JWT verification keys (SPEC §10): one key, or a JSON list of keys for
    rotation; each an HMAC secret (at least 32 bytes) or a PEM public key
    (RSA, EC, Ed25519/Ed448). The error never quotes a key: it may be a
    secret."""
    value = (_raw(name, environ) or "").strip()
    if not value:
        return ()
    if value.startswith("["):
        try:
            keys = json.loads(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
        if not keys or not all(isinstance(key, str) for key in keys):
            raise ImproperlyConfigured(
                f"{name} must be one key or a non-empty JSON list of key strings"
            )
    else:
        keys = [value]
    for index, key in enumerate(keys):
        try:
            parse_key(key)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: key {index}: {exc}") from None
    return tuple(keys)


# BRIDGE_TOPIC_NAMESPACES (SPEC §8). The choices are TopicNamespace's
# (messaging/models.py): settings cannot import models, so
# tests/test_env.py checks that both agree.
TOPIC_SUBSCRIBE = ("public", "members", "token")
TOPIC_CLIENT_PUBLISH = ("none", "members", "subscribers")
_TOPIC_BOOLS = ("presence", "join_leave", "receipts")
_TOPIC_KEYS = ("subscribe", "client_publish", "history_size", "history_ttl")
_TOPIC_KEYS += _TOPIC_BOOLS


def env_topic_namespaces(
    name: str, environ: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Topic namespaces to create at start-up: name -> the settings given (the
    others keep TopicNamespace's defaults).

    Either the short form `room:members,news:public` (name:subscribe policy;
    a bare name takes every default) or a JSON object
    `{"room": {"subscribe": "members", "join_leave": true}}`."""
    value = (_raw(name, environ) or "").strip()
    if not value:
        return {}
    if value[0] in '{["':  # JSON: only an object is valid
        found = _topic_namespaces_json(name, value)
    else:
        found = _topic_namespaces_short(name, value)
    for namespace, config in found.items():
        _check_topic_namespace(name, namespace, config)
    return found


def _topic_namespaces_short(name: str, value: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        namespace, colon, policy = (part.strip() for part in item.partition(":"))
        if namespace in found:
            raise ImproperlyConfigured(f"{name} names {namespace!r} twice")
        found[namespace] = {"subscribe": policy} if colon else {}
    return found


def _topic_namespaces_json(name: str, value: str) -> dict[str, dict[str, Any]]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ImproperlyConfigured(f"{name} names {repeated[0]!r} twice")
        return dict(pairs)

    try:
        found = json.loads(value, object_pairs_hook=no_duplicates)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(found, dict) or not all(
        isinstance(config, dict) for config in found.values()
    ):
        raise ImproperlyConfigured(
            f"{name} must be a JSON object of namespace name -> settings object, "
            f"got {value!r}"
        )
    return found


def _check_topic_namespace(name: str, namespace: str, config: dict) -> None:
    where = f"{name}: namespace {namespace!r}"
    if not NAMESPACE_RE.match(namespace) or namespace == PERSONAL_NAMESPACE:
        raise ImproperlyConfigured(
            f"{where} must match ^[a-z][a-z0-9_-]{{0,31}}$ and not be 'user'"
        )
    unknown = sorted(set(config) - set(_TOPIC_KEYS))
    if unknown:
        raise ImproperlyConfigured(
            f"{where} has unknown settings {unknown}; known: {', '.join(_TOPIC_KEYS)}"
        )
    for key, choices in (
        ("subscribe", TOPIC_SUBSCRIBE),
        ("client_publish", TOPIC_CLIENT_PUBLISH),
    ):
        if key in config and config[key] not in choices:
            raise ImproperlyConfigured(
                f"{where}: {key} must be one of {', '.join(choices)}, "
                f"got {config[key]!r}"
            )
    for key, minimum in (("history_size", 0), ("history_ttl", 1)):
        if key in config:
            number = config[key]
            if isinstance(number, bool) or not isinstance(number, int):
                raise ImproperlyConfigured(
                    f"{where}: {key} must be an integer, got {number!r}"
                )
            if not minimum <= number <= 2**31 - 1:
                raise ImproperlyConfigured(
                    f"{where}: {key} must be from {minimum} to {2**31 - 1}, "
                    f"got {number}"
                )
    for key in _TOPIC_BOOLS:
        if key in config and not isinstance(config[key], bool):
            raise ImproperlyConfigured(
                f"{where}: {key} must be true or false, got {config[key]!r}"
            )
