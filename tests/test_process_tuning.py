"""The per-process tunings of bridge_project.process_tuning keep behaviour."""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys

import pytest
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


_MMAPPED_BLOCKS = """
import ctypes, json, sys
from bridge_project import process_tuning

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
tuned = sys.argv[1] == "tuned"
applied = process_tuning.return_large_blocks_to_the_system() if tuned else None
before = libc.mallinfo2().hblks
held = [bytearray(40_000) for _ in range(10)]
print(json.dumps({"applied": applied, "mapped": libc.mallinfo2().hblks - before}))
"""


def _mapped_blocks(mode: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _MMAPPED_BLOCKS, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**environment, **env},
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's mallopt"
)
def test_blocks_of_large_frames_get_their_own_mapping_returned_on_free():
    # 40 KB: a large message's frame. By default glibc grows an arena for it,
    # whose high-water mark stays; tuned, what does not fit in a free chunk
    # already there is mapped, and unmapped on free.
    assert _mapped_blocks("default") == {"applied": None, "mapped": 0}
    tuned = _mapped_blocks("tuned")
    assert tuned["applied"] is True
    assert tuned["mapped"] >= 5


def test_an_operators_malloc_setting_is_left_alone():
    assert _mapped_blocks("tuned", MALLOC_MMAP_THRESHOLD_="131072")["applied"] is False
