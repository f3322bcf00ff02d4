"""bench.connection_memory's bucketing: who owns an allocation, from its
traceback's filenames (innermost first)."""

from __future__ import annotations

from bench.connection_memory import OTHER, OWNERS, breakdown, owner_of

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"
REPO = "/srv/bridge"


def test_the_innermost_known_frame_owns_the_allocation():
    # asyncio.Lock() made by the consumer belongs to the consumer.
    assert (
        owner_of(
            [
                f"{STDLIB}/asyncio/locks.py",
                f"{REPO}/messaging/realtime/consumers.py",
                f"{SITE}/daphne/server.py",
            ]
        )
        == "consumer"
    )


def test_generic_libraries_are_passed_over():
    # redis-py's buffers count for whoever called it.
    assert (
        owner_of([f"{SITE}/redis/asyncio/client.py", f"{REPO}/messaging/presence.py"])
        == "presence"
    )
    assert (
        owner_of(
            [f"{SITE}/redis/asyncio/client.py", f"{SITE}/channels_redis/pubsub.py"]
        )
        == "layer"
    )


def test_presence_and_the_layer_win_over_the_rest_of_messaging():
    assert owner_of([f"{REPO}/messaging/presence.py"]) == "presence"
    assert owner_of([f"{REPO}/bridge_project/channel_layer.py"]) == "layer"
    assert owner_of([f"{SITE}/channels/consumer.py"]) == "consumer"


def test_the_server_stack_is_one_owner():
    for package in ("daphne", "twisted", "autobahn", "txaio"):
        assert owner_of([f"{SITE}/{package}/x.py"]) == "daphne/twisted/autobahn"
    assert (
        owner_of([f"{REPO}/bridge_project/daphne_send_window.py"])
        == "daphne/twisted/autobahn"
    )


def test_django_and_asgiref_share_a_bucket():
    assert owner_of([f"{SITE}/django/db/backends/utils.py"]) == "django/asgiref"
    assert owner_of([f"{SITE}/asgiref/sync.py"]) == "django/asgiref"


def test_an_allocation_with_no_known_frame_is_other():
    assert owner_of([f"{STDLIB}/asyncio/events.py", "<frozen runpy>"]) == OTHER
    assert owner_of([]) == OTHER


def test_breakdown_sums_bytes_per_owner_with_every_owner_listed():
    totals = breakdown(
        [
            ([f"{SITE}/autobahn/websocket/protocol.py"], 300),
            ([f"{SITE}/daphne/ws_protocol.py"], 200),
            ([f"{REPO}/messaging/presence.py"], 40),
            ([f"{STDLIB}/json/decoder.py"], -10),
        ]
    )
    assert list(totals) == [*OWNERS, OTHER]
    assert totals["daphne/twisted/autobahn"] == 500
    assert totals["presence"] == 40
    assert totals["consumer"] == 0
    assert totals[OTHER] == -10
