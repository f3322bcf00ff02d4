"""Presence per topic (SPEC §8) on the suite's real Redis: who is subscribed
where, when a user joins and leaves, and that entries nobody refreshes stop
counting by themselves, as messaging.presence's do.

Each test starts with no topic presence keys, so cluster-wide reads
(active_topics, totals) count only its own subscriptions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from bridge_project.embedded_redis import EmbeddedRedis
from bridge_project.redis_client import get_redis
from messaging import topic_presence
from messaging.presence import PREFIX, ConnectionInfo
from tests.support.ids import fresh_user_id

pytestmark = pytest.mark.timeout(30)

# Every character a topic name may hold besides letters and digits (SPEC §8).
ODD_TOPIC = "doc:a@b=c.d-e_f:g"


@pytest.fixture(autouse=True)
def no_topic_presence(redis_server: EmbeddedRedis) -> Iterator[None]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = list(client.scan_iter(f"{PREFIX}subs:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    yield


@pytest.fixture
def short_ttl(settings) -> float:
    """Entries live 1 s unless refreshed (short, yet long enough that a slow
    CI machine still refreshes in time)."""
    settings.BRIDGE_HEARTBEAT_INTERVAL = 0.5
    return 1.0


def connection(user_id: str) -> ConnectionInfo:
    return ConnectionInfo(
        connection_id=uuid.uuid4().hex,
        user_id=user_id,
        instance="test",
        connected_at="2026-01-01T00:00:00Z",
        last_seen="2026-01-01T00:00:00Z",
        remote_addr="127.0.0.1",
        user_agent="pytest",
    )


def fresh_topic(namespace: str = "room") -> str:
    return f"{namespace}:{uuid.uuid4().hex[:10]}"


async def reads(topic: str) -> tuple[object, ...]:
    """Everything the module can tell about one topic."""
    return (
        await topic_presence.topic_users(topic),
        await topic_presence.topic_user_count(topic),
        (await topic_presence.subscriber_counts([topic]))[topic],
        await asyncio.to_thread(topic_presence.subscriber_counts_blocking, [topic]),
        topic in await topic_presence.active_topics(),
        await topic_presence.totals(),
    )


async def test_join_on_a_users_first_connection_and_leave_on_its_last():
    topic = fresh_topic()
    alice, bob = fresh_user_id("alice"), fresh_user_id("bob")
    alice_1, alice_2, bob_1 = connection(alice), connection(alice), connection(bob)

    assert await topic_presence.subscribe(topic, alice_1) is True
    assert await topic_presence.subscribe(topic, alice_2) is False
    assert await topic_presence.subscribe(topic, bob_1) is True
    # Subscribing a subscribed connection again is no second join.
    assert await topic_presence.subscribe(topic, alice_1) is False

    assert await topic_presence.unsubscribe(topic, alice_1) is False
    assert await topic_presence.unsubscribe(topic, alice_2) is True
    assert await topic_presence.unsubscribe(topic, bob_1) is True
    assert await topic_presence.subscribe(topic, alice_2) is True


async def test_unsubscribing_twice_leaves_once():
    topic = fresh_topic()
    carol = connection(fresh_user_id("carol"))
    await topic_presence.subscribe(topic, carol)

    assert await topic_presence.unsubscribe(topic, carol) is True
    assert await topic_presence.unsubscribe(topic, carol) is False
    assert await topic_presence.unsubscribe(fresh_topic(), carol) is False


async def test_concurrent_subscribes_of_one_user_join_exactly_once():
    topic = fresh_topic()
    user_id = fresh_user_id("racer")
    connections = [connection(user_id) for _ in range(50)]

    joined = await asyncio.gather(
        *(topic_presence.subscribe(topic, c) for c in connections)
    )
    assert joined.count(True) == 1
    left = await asyncio.gather(
        *(topic_presence.unsubscribe(topic, c) for c in connections)
    )
    assert left.count(True) == 1


def test_subscribes_racing_from_separate_processes_join_exactly_once():
    # Each thread has its own event loop, so its own Redis client and
    # connections: the closest in-process stand-in for separate instances.
    topic = fresh_topic()
    user_id = fresh_user_id("racer")

    def one_instance() -> list[bool]:
        async def subscribe_many() -> list[bool]:
            racers = [connection(user_id) for _ in range(20)]
            return await asyncio.gather(
                *(topic_presence.subscribe(topic, c) for c in racers)
            )

        return asyncio.run(subscribe_many())

    async def all_instances() -> list[list[bool]]:
        return await asyncio.gather(
            *(asyncio.to_thread(one_instance) for _ in range(4))
        )

    outcomes = asyncio.run(all_instances())
    assert sum(o.count(True) for o in outcomes) == 1


async def test_reads_count_live_subscriptions_per_topic_and_cluster_wide():
    topic, other = fresh_topic(), fresh_topic("news")
    alice, bob = fresh_user_id("alice"), fresh_user_id("bob")
    alice_1, alice_2, bob_1 = connection(alice), connection(alice), connection(bob)
    for c in (alice_1, alice_2, bob_1):
        await topic_presence.subscribe(topic, c)
    await topic_presence.subscribe(other, bob_1)

    assert await topic_presence.topic_users(topic) == sorted([(alice, 2), (bob, 1)])
    assert await topic_presence.topic_users(topic, offset=1, limit=1) == [
        max((alice, 2), (bob, 1))
    ]
    assert await topic_presence.topic_user_count(topic) == 2
    nobody = fresh_topic()
    expected = {topic: 3, other: 1, nobody: 0}
    assert await topic_presence.subscriber_counts([topic, other, nobody]) == expected
    assert (
        await asyncio.to_thread(
            topic_presence.subscriber_counts_blocking, [topic, other, nobody]
        )
        == expected
    )
    assert await topic_presence.active_topics() == sorted([topic, other])
    assert await topic_presence.active_topics(namespace="room") == [topic]
    assert await topic_presence.totals() == (2, 4)

    await topic_presence.unsubscribe(topic, alice_1)
    await topic_presence.unsubscribe(other, bob_1)
    assert await topic_presence.topic_users(topic) == sorted([(alice, 1), (bob, 1)])
    assert await topic_presence.active_topics() == [topic]
    assert await topic_presence.totals() == (1, 2)
    assert await topic_presence.subscriber_counts([]) == {}


async def test_a_namespace_matches_whole_namespaces_only():
    topics = ["room:1", "room:a:b", "roomy:1", "ro:om"]
    for topic in topics:
        await topic_presence.subscribe(topic, connection(fresh_user_id()))

    assert await topic_presence.active_topics(namespace="room") == [
        "room:1",
        "room:a:b",
    ]
    assert await topic_presence.active_topics(namespace="ro") == ["ro:om"]


async def test_topic_names_with_colons_at_and_equals_are_kept_apart():
    dave = fresh_user_id("dave")
    odd = connection(dave)
    # Names that end or begin like another's keys would if names were joined
    # carelessly.
    lookalike = connection(fresh_user_id("eve"))
    await topic_presence.subscribe(ODD_TOPIC, odd)
    await topic_presence.subscribe(f"{ODD_TOPIC}:users", lookalike)
    await topic_presence.subscribe("doc:a@b=c.d-e_f", lookalike)

    assert await topic_presence.topic_users(ODD_TOPIC) == [(dave, 1)]
    assert await topic_presence.subscriber_counts([ODD_TOPIC]) == {ODD_TOPIC: 1}
    assert await topic_presence.active_topics(namespace="doc") == sorted(
        [ODD_TOPIC, f"{ODD_TOPIC}:users", "doc:a@b=c.d-e_f"]
    )
    assert await topic_presence.unsubscribe(ODD_TOPIC, odd) is True
    assert await topic_presence.topic_users(ODD_TOPIC) == []
    assert await topic_presence.totals() == (2, 2)


async def test_unrefreshed_subscriptions_stop_counting_by_themselves(short_ttl):
    topic = fresh_topic()
    frank = fresh_user_id("frank")
    kept, dropped = connection(frank), connection(fresh_user_id("gone"))
    await topic_presence.subscribe(topic, kept)
    await topic_presence.subscribe(topic, dropped)

    deadline = time.monotonic() + 2 * short_ttl
    while time.monotonic() < deadline:
        await topic_presence.refresh([(topic, kept)])
        await asyncio.sleep(short_ttl / 4)

    assert await reads(topic) == (
        [(frank, 1)],
        1,
        1,
        {topic: 1},
        True,
        (1, 1),
    )
    await asyncio.sleep(short_ttl * 1.5)
    assert await reads(topic) == ([], 0, 0, {topic: 0}, False, (0, 0))
    # A user whose connections all expired joins again with the next one.
    assert await topic_presence.subscribe(topic, connection(frank)) is True


async def test_every_key_expires_with_its_entries(short_ttl):
    topic = fresh_topic()
    user = connection(fresh_user_id())
    await topic_presence.subscribe(topic, user)
    await topic_presence.refresh([(topic, user)])
    await topic_presence.unsubscribe(topic, connection(user.user_id))

    keys = [k async for k in get_redis().scan_iter(f"{PREFIX}subs:*")]
    assert len(keys) == 5
    for key in keys:
        assert 0 < await get_redis().pttl(key) <= short_ttl * 1000
    await asyncio.sleep(short_ttl * 1.5)
    assert [k async for k in get_redis().scan_iter(f"{PREFIX}subs:*")] == []


async def test_refresh_restores_what_a_redis_data_loss_took_without_joins():
    topic = fresh_topic()
    alice, bob = fresh_user_id("alice"), fresh_user_id("bob")
    alice_1, alice_2, bob_1 = connection(alice), connection(alice), connection(bob)
    subscriptions = [(topic, alice_1), (topic, alice_2), (topic, bob_1)]
    for topic_name, c in subscriptions:
        await topic_presence.subscribe(topic_name, c)
    before = await reads(topic)

    await get_redis().flushall()
    assert await reads(topic) == ([], 0, 0, {topic: 0}, False, (0, 0))

    assert await topic_presence.refresh(subscriptions) is None
    assert await reads(topic) == before
    # Alice never left: her next connection is no join, her last one leaves.
    alice_3 = connection(alice)
    assert await topic_presence.subscribe(topic, alice_3) is False
    for c in (alice_1, alice_2):
        assert await topic_presence.unsubscribe(topic, c) is False
    assert await topic_presence.unsubscribe(topic, alice_3) is True


async def test_refreshing_ten_thousand_subscriptions_is_one_quick_pipeline():
    topics = [fresh_topic() for _ in range(100)]
    subscriptions = [
        (topics[i % 100], connection(f"user-{i % 2_000}")) for i in range(10_000)
    ]

    started = time.monotonic()
    await topic_presence.refresh(subscriptions)
    elapsed = time.monotonic() - started

    assert await topic_presence.totals() == (100, 10_000)
    counts = await topic_presence.subscriber_counts(topics)
    assert set(counts.values()) == {100}
    assert await topic_presence.topic_user_count(topics[0]) == 20
    assert elapsed < 2.0, f"refresh of 10,000 subscriptions took {elapsed:.2f} s"


async def test_refresh_splits_big_keys_across_scripts(monkeypatch):
    topic, other = fresh_topic(), fresh_topic()
    alice, bob = fresh_user_id("alice"), fresh_user_id("bob")
    subscriptions = [(topic, connection(alice)) for _ in range(5)]
    subscriptions += [(topic, connection(bob)), (other, connection(bob))]
    monkeypatch.setattr(topic_presence, "REFRESH_CHUNK", 3)

    await topic_presence.refresh(subscriptions + subscriptions[:2])

    assert await topic_presence.topic_users(topic) == sorted([(alice, 5), (bob, 1)])
    assert await topic_presence.subscriber_counts([topic, other]) == {
        topic: 6,
        other: 1,
    }
    assert await topic_presence.totals() == (2, 7)


async def test_an_unsubscribe_during_a_refresh_is_not_undone_by_it():
    topic = fresh_topic()
    leaving = connection(fresh_user_id("leaving"))
    await topic_presence.subscribe(topic, leaving)
    # A beat long enough to be in flight when the connection leaves, with the
    # leaving subscription written last.
    others = [(fresh_topic(), connection(f"user-{i}")) for i in range(5_000)]
    refreshing = asyncio.create_task(
        topic_presence.refresh([*others, (topic, leaving)])
    )
    await asyncio.sleep(0)

    assert await topic_presence.unsubscribe(topic, leaving) is True
    await refreshing
    assert await topic_presence.subscriber_counts([topic]) == {topic: 0}
    assert await topic_presence.subscribe(topic, connection(leaving.user_id)) is True
