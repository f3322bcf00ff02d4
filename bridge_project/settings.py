"""Bridge settings: the only module that reads the environment (SPEC §7)."""

from __future__ import annotations

import logging
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from accounts.identifiers import USER_ID_RE
from bridge_project.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_jwt_keys,
    env_list,
    env_optional,
    env_rate,
    env_str,
    env_topic_namespaces,
    env_url,
)
from bridge_project.layers import pubsub_layer
from bridge_project.redis_reconnect import retry_once

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"
# Old keys still accepted for tokens, API-key hashes and sessions while rotating
# SECRET_KEY (docs/security.md).
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS posture: with BRIDGE_HTTPS on (the default when DEBUG is off),
# `manage.py check --deploy` has nothing to say but the SECRET_KEY's strength.
# Load balancers' health checks and Prometheus may still use plain HTTP.
BRIDGE_HTTPS = env_bool("BRIDGE_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = BRIDGE_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
SESSION_COOKIE_SECURE = BRIDGE_HTTPS
CSRF_COOKIE_SECURE = BRIDGE_HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if BRIDGE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = BRIDGE_HTTPS
SECURE_HSTS_PRELOAD = BRIDGE_HTTPS
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto: https.
if env_bool("BRIDGE_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "accounts",
    "messaging",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "bridge_project.urls"
ASGI_APPLICATION = "bridge_project.asgi.application"
# The push API is mounted at /sse/push, without a trailing slash (SPEC §6).
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project templates first: they extend the admin's own (admin/index.html).
        "DIRS": [BASE_DIR / "bridge_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=60,
        conn_health_checks=True,
    )
}
# A request thread holds its database connection while it waits, so a query
# stuck behind a lock or running away must end: 503 `unavailable` (PostgreSQL
# only; 0 turns a timeout off, e.g. for a long `migrate` on a large table).
BRIDGE_DB_STATEMENT_TIMEOUT = env_float("BRIDGE_DB_STATEMENT_TIMEOUT", 30.0)
BRIDGE_DB_LOCK_TIMEOUT = env_float("BRIDGE_DB_LOCK_TIMEOUT", 10.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    _pg_options["options"] = (
        f"{_pg_options.get('options', '')}"
        f" -c statement_timeout={int(BRIDGE_DB_STATEMENT_TIMEOUT * 1000)}"
        f" -c lock_timeout={int(BRIDGE_DB_LOCK_TIMEOUT * 1000)}"
    ).strip()
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock when a transaction starts, so two pushes that
    # assign seqs to the same user queue up instead of failing with "database is
    # locked" when a read lock is upgraded. WAL lets daphne processes read while
    # another writes.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The JavaScript client, served at a stable URL: /static/bridge/bridge.js.
STATICFILES_DIRS = [("bridge", BASE_DIR / "clients" / "js" / "src")]
# In development the admin's files are served from the apps; `make run` still
# collects them so that the production path is the one exercised.
WHITENOISE_USE_FINDERS = DEBUG
# WhiteNoise rescans every static file on every request when this is on (its
# default follows DEBUG): ~10 ms of CPU per push, measured with bench/.
WHITENOISE_AUTOREFRESH = False

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

BRIDGE_REDIS_MAX_CONNECTIONS = env_int("BRIDGE_REDIS_MAX_CONNECTIONS", 1000, minimum=10)
# HTTP requests a process runs at once, each on its own thread with its own
# database connection (bridge_project/asgi_handler.py); 503 beyond. With
# PostgreSQL, processes x this must fit max_connections (docs/deployment.md).
BRIDGE_MAX_REQUESTS_IN_FLIGHT = env_int("BRIDGE_MAX_REQUESTS_IN_FLIGHT", 64, minimum=1)
# Idle HTTP request threads a process keeps, each with its database connection
# (at most BRIDGE_MAX_REQUESTS_IN_FLIGHT).
BRIDGE_REQUEST_THREADS = env_int("BRIDGE_REQUEST_THREADS", 64, minimum=1)
# How long a push waits on the channel layer before answering 503 (SPEC §6).
BRIDGE_LAYER_TIMEOUT = env_float("BRIDGE_LAYER_TIMEOUT", 3.0, minimum=0.1)
CHANNEL_LAYERS = {
    "default": pubsub_layer(
        REDIS_URL,
        max_connections=BRIDGE_REDIS_MAX_CONNECTIONS,
        publish_timeout=BRIDGE_LAYER_TIMEOUT,
    )
}

# --- Bridge (SPEC §7) -------------------------------------------------------
BRIDGE_AUTH_MODE = env_choice("BRIDGE_AUTH_MODE", "token", ("open", "token"))
if BRIDGE_AUTH_MODE == "open" and not DEBUG:
    raise ImproperlyConfigured(
        "BRIDGE_AUTH_MODE=open trusts any user_id and needs no API key; it is for "
        "local development only and refuses to start unless DEBUG is true"
    )
BRIDGE_ALLOWED_ORIGINS = env_list("BRIDGE_ALLOWED_ORIGINS", [])
BRIDGE_TOKEN_TTL = env_int("BRIDGE_TOKEN_TTL", 3600, minimum=1)
# How long a process may keep using an API key it verified without looking it
# up again (accounts/key_cache.py); 0 looks every request's key up. Revocation
# still reaches every process at once through Redis; this bounds it otherwise.
BRIDGE_API_KEY_CACHE_SECONDS = env_float(
    "BRIDGE_API_KEY_CACHE_SECONDS", 10.0, minimum=0.0
)
# JWTs from an existing login system (SPEC §10; docs/security.md "Using your
# own JWTs"): verified with these keys and/or the JWKS at this URL.
BRIDGE_JWT_KEYS = env_jwt_keys("BRIDGE_JWT_KEYS")
BRIDGE_JWT_JWKS_URL = env_url("BRIDGE_JWT_JWKS_URL")
BRIDGE_JWT_AUDIENCE = env_optional("BRIDGE_JWT_AUDIENCE")
BRIDGE_JWT_ISSUER = env_optional("BRIDGE_JWT_ISSUER")
BRIDGE_JWT_USER_CLAIM = env_str("BRIDGE_JWT_USER_CLAIM", "sub").strip()
if not BRIDGE_JWT_USER_CLAIM:
    raise ImproperlyConfigured("BRIDGE_JWT_USER_CLAIM must name a claim, got ''")
BRIDGE_MAX_CONNECTIONS_PER_USER = env_int(
    "BRIDGE_MAX_CONNECTIONS_PER_USER", 5, minimum=1
)
# Topics one connection may subscribe to at once (SPEC §8 too_many_subscriptions).
BRIDGE_MAX_SUBSCRIPTIONS = env_int("BRIDGE_MAX_SUBSCRIPTIONS", 100, minimum=1)
BRIDGE_HEARTBEAT_INTERVAL = env_float("BRIDGE_HEARTBEAT_INTERVAL", 30.0, minimum=0.1)
BRIDGE_HEARTBEAT_TIMEOUT = env_float("BRIDGE_HEARTBEAT_TIMEOUT", 60.0, minimum=0.1)
# How long a process may take to leave on SIGTERM (SPEC §11): clients sent
# elsewhere with 1001, in-flight requests answered, presence removed; past it,
# what is left is closed (bridge_project/daphne_shutdown.py).
BRIDGE_SHUTDOWN_GRACE = env_float("BRIDGE_SHUTDOWN_GRACE", 10.0, minimum=1.0)
# Client `message` frames per user per minute, counted cluster-wide in Redis
# (bridge_project/rate_limits.py), so reconnecting does not reset the count.
BRIDGE_CLIENT_MESSAGES_PER_MINUTE = env_int(
    "BRIDGE_CLIENT_MESSAGES_PER_MINUTE", 120, minimum=1
)
# Client `signal` frames (SPEC §9: typing indicators…) per user per minute,
# counted cluster-wide in Redis like `message` frames.
BRIDGE_CLIENT_SIGNALS_PER_MINUTE = env_int(
    "BRIDGE_CLIENT_SIGNALS_PER_MINUTE", 600, minimum=1
)
# SPEC §9 streamed messages: a stream with no part for this long is finished
# by the server (`incomplete`); at most this many open per connection or key.
BRIDGE_STREAM_IDLE_TIMEOUT = env_float("BRIDGE_STREAM_IDLE_TIMEOUT", 60.0, minimum=0.1)
BRIDGE_MAX_OPEN_STREAMS = env_int("BRIDGE_MAX_OPEN_STREAMS", 10, minimum=1)
# ping, pong and ack frames per connection per minute, counted in memory: cheap
# frames get no Redis round trip each.
BRIDGE_CLIENT_CONTROL_FRAMES_PER_MINUTE = env_int(
    "BRIDGE_CLIENT_CONTROL_FRAMES_PER_MINUTE", 600, minimum=1
)
# WebSocket handshakes per minute, cluster-wide (4429 rate_limited beyond); 0
# turns a limit off. The address is counted before any credential is checked.
BRIDGE_HANDSHAKES_PER_MINUTE_PER_USER = env_int(
    "BRIDGE_HANDSHAKES_PER_MINUTE_PER_USER", 60
)
BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS = env_int(
    "BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS", 600
)
# Threads for the WebSocket side's database work (credentials, last seq,
# replay, client messages, heartbeat), apart from asgiref's one shared thread.
BRIDGE_WS_DB_THREADS = env_int("BRIDGE_WS_DB_THREADS", 4, minimum=1)
BRIDGE_MAX_FRAME_BYTES = env_int("BRIDGE_MAX_FRAME_BYTES", 65536, minimum=1024)
BRIDGE_MAX_MESSAGE_BYTES = env_int("BRIDGE_MAX_MESSAGE_BYTES", 65536, minimum=64)
BRIDGE_MAX_BODY_BYTES = env_int("BRIDGE_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
# Unsent bytes a WebSocket may have before it is closed with 4008 (SPEC §11),
# and how long a replay waits for a full transport to drain before that.
BRIDGE_MAX_PENDING_BYTES = env_int(
    "BRIDGE_MAX_PENDING_BYTES", 1024 * 1024, minimum=64 * 1024
)
BRIDGE_DRAIN_TIMEOUT = env_float("BRIDGE_DRAIN_TIMEOUT", 10.0, minimum=0.1)
BRIDGE_MAX_BATCH = env_int("BRIDGE_MAX_BATCH", 1000, minimum=1)
# Public accounts one message may reach by mention; later mentions are plain
# text (docs/security.md, "Mentions"). 0 turns mention routing off.
BRIDGE_MAX_MENTIONS = env_int("BRIDGE_MAX_MENTIONS", 50, minimum=0)
BRIDGE_HISTORY_TTL = env_int("BRIDGE_HISTORY_TTL", 7 * 24 * 3600, minimum=60)
BRIDGE_HISTORY_MAX_PER_USER = env_int("BRIDGE_HISTORY_MAX_PER_USER", 1000, minimum=1)
BRIDGE_METRICS_ALLOWED_IPS = env_list(
    "BRIDGE_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"]
)
PUBLIC_ACCOUNTS = env_list("PUBLIC_ACCOUNTS", [])
_bad_handles = [h for h in PUBLIC_ACCOUNTS if not USER_ID_RE.match(h)]
if _bad_handles:
    raise ImproperlyConfigured(
        f"PUBLIC_ACCOUNTS has invalid handles {_bad_handles}: each must match "
        "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
    )
# Topic namespaces created at start-up when missing, never changed (SPEC §8):
# "room:members,news:public" or a JSON object of name -> settings.
BRIDGE_TOPIC_NAMESPACES = env_topic_namespaces("BRIDGE_TOPIC_NAMESPACES")
# The demo page (/demo/): on in open mode; BRIDGE_DEMO=1 turns it on in token
# mode too, where it mints a token for whatever name a visitor types (never in
# production). It uses the topic namespace `demo` (created at start-up).
BRIDGE_DEMO = env_bool("BRIDGE_DEMO", False)
BRIDGE_DEMO_ENABLED = BRIDGE_DEMO or BRIDGE_AUTH_MODE == "open"

# Django refuses bodies over this before any parser runs; Bridge's own parser
# turns the same limit into a JSON 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = BRIDGE_MAX_BODY_BYTES

# Throttle rates: "N/second|minute|hour|day", or "none" for no limit.
BRIDGE_THROTTLE_API_KEY_RATE = env_rate("BRIDGE_THROTTLE_API_KEY_RATE", "60000/minute")
BRIDGE_THROTTLE_ADDRESS_RATE = env_rate("BRIDGE_THROTTLE_ADDRESS_RATE", "6000/minute")
# How many reverse proxies stand in front of Bridge; X-Forwarded-For is read
# only that deep, so a client cannot forge its address for throttling.
BRIDGE_NUM_PROXIES = env_int("BRIDGE_NUM_PROXIES", 0)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "bridge",
        # Bridge's own code uses no cache (throttles count in
        # bridge_project/rate_limits.py); short timeouts for anything that does.
        "OPTIONS": {
            "socket_connect_timeout": 0.5,
            "socket_timeout": 0.5,
            # After a Redis restart, a dead pooled connection is replaced, not
            # reported (bridge_project/redis_reconnect.py).
            "retry": retry_once(),
        },
    }
}

REST_FRAMEWORK = {
    "DEFAULT_PARSER_CLASSES": ["messaging.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.OpenModeAuthentication",
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.SessionAuthentication",
    ],
    # Deny unless a view says otherwise: each declares its own permission.
    "DEFAULT_PERMISSION_CLASSES": ["accounts.authentication.DenyAll"],
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttling.ApiKeyRateThrottle",
        "accounts.throttling.AddressRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": BRIDGE_THROTTLE_API_KEY_RATE,
        "address": BRIDGE_THROTTLE_ADDRESS_RATE,
    },
    "NUM_PROXIES": BRIDGE_NUM_PROXIES,
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "messaging.api.exceptions.error_response_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Bridge API",
    "DESCRIPTION": "Push messages over HTTP to live WebSocket connections.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

BRIDGE_LOG_FORMAT = env_choice("BRIDGE_LOG_FORMAT", "text", ("text", "json"))
# Python warnings go through the same handler (and format) as every other line.
logging.captureWarnings(True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {
            "()": "bridge_project.log_format.KeyValueFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "bridge_project.log_format.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": BRIDGE_LOG_FORMAT}
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}
