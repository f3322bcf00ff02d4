"""The per-process tunings of bridge_project.process_tuning keep behaviour."""

from __future__ import annotations

import gc

from twisted.web import http

from bridge_project import asgi, process_tuning


def test_the_application_collects_garbage_less_often_but_still_collects():
    assert asgi.application is not None  # importing it applied the tuning
    assert gc.isenabled()
    assert gc.get_threshold() == process_tuning.GC_THRESHOLDS
    assert gc.get_freeze_count() > 0


def test_twisted_content_type_parse_is_cached_and_unchanged():
    process_tuning.cache_twisted_content_type()
    parse = http._parseContentType
    assert parse(b"Application/JSON; charset=utf-8") == b"application/json"
    assert parse(b"application/x-www-form-urlencoded") == (
        b"application/x-www-form-urlencoded"
    )
    assert parse(b"multipart/form-data; boundary=x") == b"multipart/form-data"
    hits = parse.cache_info().hits
    assert parse(b"Application/JSON; charset=utf-8") == b"application/json"
    assert parse.cache_info().hits == hits + 1
    # Installing twice does not wrap the cache in another cache.
    process_tuning.cache_twisted_content_type()
    assert http._parseContentType is parse


def test_twisted_access_log_line_is_not_formatted():
    from daphne.http_protocol import HTTPFactory

    process_tuning.skip_twisted_access_log()
    factory = HTTPFactory(server=None)
    written = []
    factory._logFile = type("Sink", (), {"write": written.append})()
    factory.log(request=object())  # a real line would need a real request
    assert written == []


def test_redis_library_version_is_looked_up_once():
    from importlib import metadata

    import redis.utils

    process_tuning.cache_redis_library_version()
    assert redis.utils.get_lib_version() == metadata.version("redis")
    hits = redis.utils.get_lib_version.cache_info().hits
    redis.utils.get_lib_version()
    assert redis.utils.get_lib_version.cache_info().hits == hits + 1
