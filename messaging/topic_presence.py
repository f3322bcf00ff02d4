"""Cluster-wide presence per topic, in Redis (SPEC §8 "Topics").

A subscription is one connection subscribed to one topic. Keys (all under
`bridge:subs:`; a topic name is used raw, and always last or after a user id,
which never contains ':' (accounts.identifiers), so no two topics or kinds of
key can share a name):
  subs:topics                    sorted set, member topic,
                                 score = latest expiry of its subscriptions
  subs:all                       sorted set, member "<connection id> <topic>",
                                 score = expiry (the cluster-wide count)
  subs:conns:<topic>             sorted set, member connection id, score = expiry
  subs:users:<topic>             sorted set, member user id,
                                 score = latest expiry of the user's subscriptions
  subs:user:<user id>:<topic>    sorted set, member connection id, score = expiry:
                                 "has this user another live connection here" is
                                 one ZCARD, whatever the size of the topic

As in messaging.presence, an entry counts while its score (unix s) is not past,
every read counts only those, and every write sets the key's own expiry to the
TTL (two heartbeat intervals), so a crashed process's subscriptions stop
counting by themselves and no key outlives its last live entry. Expired members
are removed by the next subscribe, unsubscribe or refresh that touches their key
(refresh leaves the per-user keys alone: one key per subscription, a sweep each
would add a third to its cost; they hold one user's connections to one topic).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence

from bridge_project.redis_batching import run_pipeline_blocking
from bridge_project.redis_client import (
    get_blocking_redis,
    get_redis,
    get_shared_pipeline,
)
from messaging.presence import PREFIX, ConnectionInfo, ttl_seconds

TOPICS_KEY = f"{PREFIX}subs:topics"
SUBSCRIPTIONS_KEY = f"{PREFIX}subs:all"

# KEYS: user's connections here, topic's connections, topic's users, topics,
# all subscriptions. ARGV: now, expiry, ttl ms, connection id, user id, topic,
# subscription member.
# Atomic "does the user have a live connection here; add this one": checked
# then added from Python, two processes could both see none and both send a
# `join` (SPEC §8), or both see the other's and send none.
_SUBSCRIBE = """
local stale = '(' .. ARGV[1]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', stale)
local live = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[3], 'GT', ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[4], 'GT', ARGV[2], ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[7])
for i = 1, 5 do
  if i > 1 then redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', stale) end
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
if live == 0 then return 1 end
return 0
"""

# KEYS as _SUBSCRIBE. ARGV: now, connection id, user id, topic, subscription
# member. Atomic for the same reason: two connections of one user leaving at
# once must give exactly one `leave`. The user's and the topic's "latest
# expiry" scores are lowered to what remains, so that a departed connection's
# later expiry does not keep them counted (XX: never creating a key without a
# TTL; a member missing after a data loss comes back with the next refresh).
_UNSUBSCRIBE = """
local stale = '(' .. ARGV[1]
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', stale)
local mine = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #mine == 0 then
  redis.call('ZREM', KEYS[3], ARGV[3])
else
  redis.call('ZADD', KEYS[3], 'XX', mine[2], ARGV[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', stale)
local latest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #latest == 0 then
  redis.call('ZREM', KEYS[4], ARGV[4])
else
  redis.call('ZADD', KEYS[4], 'XX', latest[2], ARGV[4])
end
if removed == 1 and #mine == 0 then return 1 end
return 0
"""


# KEYS: the keys to write, each followed in ARGV (after now, ttl ms) by its
# mode ('k' add, 'p' add and drop expired members, 'g' the same with GT), its
# member count n and n (score, member) pairs. Python groups the members per
# key, so that each key costs one ZADD, not one per member.
_REFRESH = """
local stale, at = '(' .. ARGV[1], 3
for i = 1, #KEYS do
  local mode, n = ARGV[at], tonumber(ARGV[at + 1])
  local last = at + 1 + 2 * n
  if mode == 'g' then
    redis.call('ZADD', KEYS[i], 'GT', unpack(ARGV, at + 2, last))
  else
    redis.call('ZADD', KEYS[i], unpack(ARGV, at + 2, last))
  end
  if mode ~= 'k' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', stale)
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  at = last + 1
end
"""

# Members per refresh script: Redis runs nothing else while one runs (a few ms
# for 500), and a ZADD's unpack must stay under Lua's limit (~8,000 values).
REFRESH_CHUNK = 500


# The loop's refreshes in flight. An unsubscribe waits for them: sent while one
# that carries the same subscription is on its way, it could reach Redis first
# and be undone, leaving an entry that counts for two intervals and makes the
# user's next subscribe miss its `join`.
_refreshes: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, set[asyncio.Future[None]]
] = weakref.WeakKeyDictionary()


def topic_conns_key(topic: str) -> str:
    return f"{PREFIX}subs:conns:{topic}"


def topic_users_key(topic: str) -> str:
    return f"{PREFIX}subs:users:{topic}"


def user_conns_key(topic: str, user_id: str) -> str:
    return f"{PREFIX}subs:user:{user_id}:{topic}"


def subscription_member(topic: str, connection_id: str) -> str:
    # Connection ids are hex (uuid4), so the first space ends one.
    return f"{connection_id} {topic}"


def _keys(topic: str, user_id: str) -> tuple[str, ...]:
    return (
        user_conns_key(topic, user_id),
        topic_conns_key(topic),
        topic_users_key(topic),
        TOPICS_KEY,
        SUBSCRIPTIONS_KEY,
    )


async def subscribe(topic: str, connection: ConnectionInfo) -> bool:
    """Register the subscription; True when it is the user's first live
    connection in the topic (the caller sends `join`). Subscribing a
    connection again refreshes it and returns False."""
    now = time.time()
    ttl = ttl_seconds()
    first = await get_redis().eval(
        _SUBSCRIBE,
        5,
        *_keys(topic, connection.user_id),
        now,
        now + ttl,
        int(ttl * 1000),
        connection.connection_id,
        connection.user_id,
        topic,
        subscription_member(topic, connection.connection_id),
    )
    return bool(first)


async def unsubscribe(topic: str, connection: ConnectionInfo) -> bool:
    """Remove the subscription; True when it was the user's last live
    connection in the topic (the caller sends `leave`). False when it was
    not registered, so a second call (or one racing the first) sends nothing.

    An entry that expired unseen (its process stalled past the TTL) but that
    no other subscribe or unsubscribe of the user here removed still ends the
    user's presence with True: nobody has sent that `leave` yet.

    Waits for this loop's refreshes in flight (see _refreshes). A refresh
    started after this call must not carry the subscription: the caller takes
    it out of what its heartbeat refreshes first, then calls this."""
    pending = _refreshes.get(asyncio.get_running_loop())
    if pending:
        await asyncio.wait(list(pending))
    left = await get_redis().eval(
        _UNSUBSCRIBE,
        5,
        *_keys(topic, connection.user_id),
        time.time(),
        connection.connection_id,
        connection.user_id,
        topic,
        subscription_member(topic, connection.connection_id),
    )
    return bool(left)


async def refresh(subscriptions: Sequence[tuple[str, ConnectionInfo]]) -> None:
    """Re-write every entry of these subscriptions in one round trip (the
    heartbeat, every interval, for all of its process's subscriptions).

    Writing (not just extending) means a Redis that lost its data is refilled
    on the next beat, silently: these users were joined all along, so no
    `join` is due. Scripts of REFRESH_CHUNK members, all in one pipeline: as
    one command per key, 10,000 subscriptions (10,000 users) took 0.4-0.5 s
    of the event loop to encode and parse, every socket of the process waiting
    meanwhile; as scripts 0.1-0.2 s, for about the same time in Redis.

    Unsubscribes wait until it is done (see _refreshes): take the list and
    call this with no await in between, so that none can slip between the
    two and be undone by the refresh."""
    if not subscriptions:
        return
    done = asyncio.get_running_loop().create_future()
    in_flight = _refreshes.setdefault(asyncio.get_running_loop(), set())
    in_flight.add(done)
    try:
        await _write_refresh(subscriptions)
    finally:
        in_flight.discard(done)
        done.set_result(None)


async def _write_refresh(subscriptions: Sequence[tuple[str, ConnectionInfo]]) -> None:
    now = time.time()
    ttl = ttl_seconds()
    pipe = get_redis().pipeline(transaction=False)
    for keys, args in _refresh_scripts(_refresh_writes(subscriptions), now + ttl):
        pipe.eval(_REFRESH, len(keys), *keys, now, int(ttl * 1000), *args)
    await pipe.execute()


def _refresh_writes(
    subscriptions: Sequence[tuple[str, ConnectionInfo]],
) -> dict[str, tuple[str, list[str]]]:
    """key -> (_REFRESH mode, members to write), each member once."""
    writes: dict[str, tuple[str, dict[str, None]]] = {}

    def write(key: str, mode: str, member: str) -> None:
        writes.setdefault(key, (mode, {}))[1][member] = None

    for topic, info in subscriptions:
        write(user_conns_key(topic, info.user_id), "k", info.connection_id)
        write(topic_conns_key(topic), "p", info.connection_id)
        write(topic_users_key(topic), "g", info.user_id)
        write(TOPICS_KEY, "g", topic)
        write(SUBSCRIPTIONS_KEY, "p", subscription_member(topic, info.connection_id))
    return {key: (mode, list(members)) for key, (mode, members) in writes.items()}


def _refresh_scripts(
    writes: dict[str, tuple[str, list[str]]], expiry: float
) -> Iterator[tuple[list[str], list[str]]]:
    """(KEYS, ARGV after the first two) of each _REFRESH call, REFRESH_CHUNK
    members at most in each; a key with more spans several."""
    score = repr(expiry)
    keys: list[str] = []
    args: list[str] = []
    size = 0
    for key, (mode, members) in writes.items():
        for start in range(0, len(members), REFRESH_CHUNK):
            part = members[start : start + REFRESH_CHUNK]
            if size + len(part) > REFRESH_CHUNK:
                yield keys, args
                keys, args, size = [], [], 0
            keys.append(key)
            args += (mode, str(len(part)))
            for member in part:
                args += (score, member)
            size += len(part)
    if keys:
        yield keys, args


async def topic_users(
    topic: str, *, offset: int = 0, limit: int = 100
) -> list[tuple[str, int]]:
    """(user id, live connections) of the topic's subscribers, sorted by user id."""
    now = time.time()
    found = await get_redis().zrangebyscore(topic_users_key(topic), now, "+inf")
    page = sorted(u.decode() for u in found)[offset : offset + limit]
    if not page:
        return []
    counts = await get_shared_pipeline().execute(
        [("ZCOUNT", user_conns_key(topic, user_id), now, "+inf") for user_id in page]
    )
    return [
        (user_id, int(count))
        for user_id, count in zip(page, counts, strict=True)
        if int(count)
    ]


async def topic_user_count(topic: str) -> int:
    """Distinct users with a live subscription to the topic."""
    return int(await get_redis().zcount(topic_users_key(topic), time.time(), "+inf"))


async def subscriber_counts(topics: Iterable[str]) -> dict[str, int]:
    """Live subscriptions (connections) per topic, cluster-wide, in one round
    trip."""
    names = list(dict.fromkeys(topics))
    if not names:
        return {}
    counts = await get_shared_pipeline().execute(_count_commands(names))
    return dict(zip(names, (int(c) for c in counts), strict=True))


def subscriber_counts_blocking(topics: Iterable[str]) -> dict[str, int]:
    """subscriber_counts for a worker thread (the push views' `subscribers`)."""
    names = list(dict.fromkeys(topics))
    if not names:
        return {}
    counts = run_pipeline_blocking(get_blocking_redis(), _count_commands(names))
    return dict(zip(names, (int(c) for c in counts), strict=True))


async def active_topics(*, namespace: str | None = None) -> list[str]:
    """Topics with at least one live subscription, cluster-wide, sorted; only
    those of `namespace` when given."""
    found = await get_redis().zrangebyscore(TOPICS_KEY, time.time(), "+inf")
    topics = (t.decode() for t in found)
    if namespace is not None:
        topics = (t for t in topics if t.startswith(f"{namespace}:"))
    return sorted(topics)


async def totals() -> tuple[int, int]:
    """(topics with live subscriptions, live subscriptions), cluster-wide, for
    /api/stats (SPEC §8 `topics`, `subscriptions`)."""
    now = time.time()
    topics, subscriptions = await get_shared_pipeline().execute(
        [
            ("ZCOUNT", TOPICS_KEY, now, "+inf"),
            ("ZCOUNT", SUBSCRIPTIONS_KEY, now, "+inf"),
        ]
    )
    return int(topics), int(subscriptions)


def _count_commands(topics: list[str]) -> list[tuple[str, str, float, str]]:
    now = time.time()
    return [("ZCOUNT", topic_conns_key(topic), now, "+inf") for topic in topics]
