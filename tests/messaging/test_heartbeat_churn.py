"""The heartbeat while connections come and go (SPEC §6 "Presence"): one
connection closing in the middle of a beat must not cost every other
connection of the process its presence refresh.

Found by tests/e2e/test_fault_redis_restart.py: when its 100 clients closed,
daphne logged "heartbeat failed" with channels_redis' RuntimeError "You can
only call group_add() on channels that exist in-process". Here the same race
is made deterministic, in process: a connection closes while the beat reads
the users' seqs from the database.
"""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from bridge_project.asgi import application
from bridge_project.redis_client import get_redis
from messaging import presence
from messaging.realtime import heartbeat
from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

TIMEOUT = 5


async def open_socket(user_id: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws?user_id={user_id}")
    accepted, _ = await communicator.connect(timeout=TIMEOUT)
    assert accepted
    connected = json.loads(await communicator.receive_from(timeout=TIMEOUT))
    assert connected["type"] == "connected", connected
    return communicator


async def presence_expiry(user_id: str) -> float:
    """When the user's (only) connection stops counting as online, unix s."""
    entries = await get_redis().zrange(
        presence.user_key(user_id), 0, -1, withscores=True
    )
    assert len(entries) == 1, entries
    return entries[0][1]


async def test_a_connection_closing_during_a_beat_does_not_stop_the_others_refresh(
    monkeypatch,
):
    staying, leaving = fresh_user_id("stay"), fresh_user_id("leave")
    stayer = await open_socket(staying)
    leaver = await open_socket(leaving)
    beat = heartbeat.heartbeat_for_loop()
    read_seqs = heartbeat._latest_seqs

    async def read_seqs_while_one_closes(user_ids):
        # The client goes away while the beat waits for the database.
        await leaver.disconnect(timeout=TIMEOUT)
        return await read_seqs(user_ids)

    monkeypatch.setattr(heartbeat, "_latest_seqs", read_seqs_while_one_closes)
    before = await presence_expiry(staying)
    failure = None
    try:
        await beat.beat()
    except Exception as exc:  # reported below, with what it cost
        failure = exc
    try:
        assert await presence_expiry(staying) > before, (
            f"the staying connection's presence was not refreshed; the beat "
            f"raised {failure!r}"
        )
        assert failure is None
        ping = json.loads(await stayer.receive_from(timeout=TIMEOUT))
        assert ping["type"] == "ping", ping
    finally:
        await stayer.disconnect(timeout=TIMEOUT)
