"""Topics through two real daphne processes (SPEC §8): fan-out across
instances, recovery with `since`, policies, client publish, join/leave,
live-only namespaces and the subscription limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.server_db import shell_json
from tests.support.topics import create_topics, fresh_namespace
from tests.support.ws import Client, assert_no_message, connect_user, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

MAX_SUBSCRIPTIONS = 4


@pytest.fixture(scope="module")
def cluster(redis_server: EmbeddedRedis, migrated_sqlite, tmp_path_factory):
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("topics"),
        2,
        database=migrated_sqlite,
        BRIDGE_MAX_SUBSCRIPTIONS=str(MAX_SUBSCRIPTIONS),
    ) as (a, b):
        yield a, b


@pytest.fixture(scope="module")
def ns(cluster) -> Iterator[dict[str, str]]:
    """One namespace per policy, created once for the module."""
    a, _ = cluster
    names = {
        "public": fresh_namespace("pub"),
        "members": fresh_namespace("mem"),
        "publish": fresh_namespace("chat"),
        "live": fresh_namespace("live"),
        "joins": fresh_namespace("room"),
    }
    create_topics(
        a.env,
        {
            names["public"]: {"subscribe": "public"},
            names["members"]: {"subscribe": "members", "client_publish": "members"},
            names["publish"]: {
                "subscribe": "public",
                "client_publish": "subscribers",
            },
            names["live"]: {"subscribe": "public", "history_size": 0},
            names["joins"]: {"subscribe": "public", "join_leave": True},
        },
    )
    yield names


async def subscribe(
    client: Client, topic: str, *, since: int | None = None, ref: str = "s"
) -> dict:
    frame = {"type": "subscribe", "topic": topic, "ref": ref}
    if since is not None:
        frame["since"] = since
    await client.send(frame)
    return await client.receive_type("subscribed")


async def push_topic(server: DaphneProcess, topic: str, data=None, **extra) -> dict:
    body = {"topic": topic, **extra}
    if data is not None:
        body["data"] = data
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(f"{server.http}/sse/push", json=body)
    assert reply.status_code == 202, reply.text
    return reply.json()


async def test_a_topic_message_reaches_subscribers_on_both_instances_once_in_order(
    cluster, ns, sockets
):
    a, b = cluster
    topic = f"{ns['public']}:lobby"
    readers = []
    for server in (a, b, b):
        client, _ = await connect_user(server.ws, fresh_user_id())
        sockets.append(client)
        subscribed = await subscribe(client, topic)
        assert subscribed == {
            "type": "subscribed",
            "topic": topic,
            "seq": 0,
            "recovered": True,
            "ref": "s",
        }
        readers.append(client)

    replies = [await push_topic(a, topic, {"n": n}) for n in range(5)]

    assert [r["seq"] for r in replies] == [1, 2, 3, 4, 5]
    assert {r["topic"] for r in replies} == {topic}
    assert replies[-1]["subscribers"] == 3
    for client in readers:
        got = await receive_messages(client, 5)
        assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
        assert [m["data"] for m in got] == [{"n": n} for n in range(5)]
        assert {m["topic"] for m in got} == {topic}
        assert {m["to"] for m in got} == {None}
        await assert_no_message(client, 0.3)


async def test_subscribe_since_replays_exactly_the_missed_messages_then_live(
    cluster, ns, sockets
):
    a, b = cluster
    topic = f"{ns['public']}:doc-{fresh_user_id()}"
    for n in range(1, 6):
        await push_topic(a, topic, {"v": n})
    client, _ = await connect_user(b.ws, fresh_user_id())
    sockets.append(client)

    # Pushes keep arriving while the subscription replays.
    pushing = asyncio.ensure_future(
        asyncio.gather(*(push_topic(a, topic, {"v": n}) for n in range(6, 16)))
    )
    subscribed = await subscribe(client, topic, since=2)
    await pushing

    assert subscribed["recovered"] is True
    assert subscribed["seq"] >= 5
    got = await receive_messages(client, 13)
    assert [m["seq"] for m in got] == list(range(3, 16))
    await assert_no_message(client, 0.3)


async def test_since_older_than_the_kept_history_is_not_recovered(cluster, ns, sockets):
    a, _ = cluster
    topic = f"{ns['public']}:old-{fresh_user_id()}"
    for n in range(1, 5):
        await push_topic(a, topic, {"v": n})
    # Retention dropped seqs 1 and 2.
    shell_json(
        a.env,
        "import json\nfrom messaging.models import StreamEntry\n"
        f"StreamEntry.objects.filter(stream={topic!r}, seq__lte=2).delete()\n"
        "print(json.dumps(0))",
    )
    client, _ = await connect_user(a.ws, fresh_user_id())
    sockets.append(client)

    subscribed = await subscribe(client, topic, since=0)

    assert (subscribed["seq"], subscribed["recovered"]) == (4, False)
    truncated = await client.receive_type("history_truncated")
    assert truncated == {"type": "history_truncated", "oldest_seq": 3, "topic": topic}
    assert [m["seq"] for m in await receive_messages(client, 2)] == [3, 4]


async def test_members_namespace_admits_members_and_refuses_others(
    cluster, ns, sockets
):
    a, b = cluster
    topic = f"{ns['members']}:support-1"
    member, stranger = fresh_user_id("member"), fresh_user_id("stranger")
    create_topics(a.env, {}, members=[(topic, member)])
    admitted, _ = await connect_user(b.ws, member)
    refused, _ = await connect_user(b.ws, stranger)
    sockets += [admitted, refused]

    assert (await subscribe(admitted, topic))["topic"] == topic
    await refused.send({"type": "subscribe", "topic": topic, "ref": "r1"})
    error = await refused.receive_type("error")

    assert error["code"] == "forbidden"
    assert (error["ref"], error["topic"]) == ("r1", topic)
    await push_topic(a, topic, {"for": "members"})
    assert (await receive_messages(admitted, 1))[0]["data"] == {"for": "members"}
    await assert_no_message(refused, 0.3)


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        ("nosuchns:room", "not_found"),
        ("user:alice", "invalid_frame"),
        ("no-colon", "invalid_frame"),
        ("room:" + "x" * 129, "invalid_frame"),
    ],
)
async def test_subscribe_refusals_name_the_topic_and_ref(cluster, topic, code, sockets):
    a, _ = cluster
    client, _ = await connect_user(a.ws, fresh_user_id())
    sockets.append(client)

    await client.send({"type": "subscribe", "topic": topic, "ref": "q"})
    error = await client.receive_type("error")

    assert (error["code"], error["ref"]) == (code, "q")
    # The connection stays usable.
    await client.send({"type": "ping"})
    assert (await client.receive_type("pong"))["type"] == "pong"


async def test_unsubscribe_stops_delivery_and_is_answered(cluster, ns, sockets):
    a, b = cluster
    topic = f"{ns['public']}:leave-{fresh_user_id()}"
    client, _ = await connect_user(b.ws, fresh_user_id())
    sockets.append(client)
    await subscribe(client, topic)

    await client.send({"type": "unsubscribe", "topic": topic, "ref": "u"})
    unsubscribed = await client.receive_type("unsubscribed")
    await push_topic(a, topic, {"after": "leaving"})

    assert unsubscribed == {
        "type": "unsubscribed",
        "topic": topic,
        "reason": "client",
        "ref": "u",
    }
    await assert_no_message(client, 0.5)


async def test_subscriptions_per_connection_are_limited(cluster, ns, sockets):
    a, _ = cluster
    client, _ = await connect_user(a.ws, fresh_user_id())
    sockets.append(client)
    for n in range(MAX_SUBSCRIPTIONS):
        await subscribe(client, f"{ns['public']}:many-{n}")

    await client.send(
        {"type": "subscribe", "topic": f"{ns['public']}:one-more", "ref": "x"}
    )
    error = await client.receive_type("error")
    # Subscribing again to a held topic is not a new subscription.
    again = await subscribe(client, f"{ns['public']}:many-0")

    assert error["code"] == "too_many_subscriptions"
    assert error["topic"] == f"{ns['public']}:one-more"
    assert again["topic"] == f"{ns['public']}:many-0"


async def test_client_publish_reaches_other_subscribers_but_not_the_sending_socket(
    cluster, ns, sockets
):
    a, b = cluster
    topic = f"{ns['publish']}:chat-{fresh_user_id()}"
    alice = fresh_user_id("alice")
    sender, _ = await connect_user(a.ws, alice)
    senders_other, _ = await connect_user(b.ws, alice)
    listener, _ = await connect_user(b.ws, fresh_user_id("bob"))
    sockets += [sender, senders_other, listener]
    for client in (sender, senders_other, listener):
        await subscribe(client, topic)

    await sender.send(
        {"type": "message", "topic": topic, "text": "hello room", "ref": "m1"}
    )
    ack = await sender.receive_type("ack")

    assert (ack["ref"], ack["topic"], ack["seq"], ack["recipients"]) == (
        "m1",
        topic,
        1,
        [],
    )
    for client in (senders_other, listener):
        (message,) = await receive_messages(client, 1)
        assert (message["from"], message["topic"], message["seq"]) == (alice, topic, 1)
        assert message["data"] == {"text": "hello room"}
    await assert_no_message(sender, 0.5)
    # The sender's cursor moved past its own message: the next one is not a gap.
    await push_topic(a, topic, {"n": 2})
    assert [m["seq"] for m in await receive_messages(sender, 1)] == [2]


async def test_client_publish_is_refused_where_the_namespace_does_not_allow_it(
    cluster, ns, sockets
):
    a, _ = cluster
    client, _ = await connect_user(a.ws, fresh_user_id())
    sockets.append(client)
    public_topic = f"{ns['public']}:readonly"
    members_topic = f"{ns['members']}:closed"

    for topic in (public_topic, members_topic):
        await client.send({"type": "message", "topic": topic, "text": "hi", "ref": "p"})
        error = await client.receive_type("error")
        assert (error["code"], error["ref"], error["topic"]) == (
            "forbidden",
            "p",
            topic,
        )
    # `subscribers` needs a subscription on this connection.
    await client.send(
        {"type": "message", "topic": f"{ns['publish']}:x", "text": "hi", "ref": "s"}
    )
    assert (await client.receive_type("error"))["code"] == "forbidden"


async def test_a_live_only_namespace_delivers_with_null_seqs_and_stores_nothing(
    cluster, ns, sockets
):
    a, b = cluster
    topic = f"{ns['live']}:ticker"
    client, _ = await connect_user(b.ws, fresh_user_id())
    sockets.append(client)
    subscribed = await subscribe(client, topic, since=0)

    reply = await push_topic(a, topic, {"price": 1})

    assert (subscribed["seq"], subscribed["recovered"]) == (None, False)
    assert reply["seq"] is None
    (message,) = await receive_messages(client, 1)
    assert (message["seq"], message["data"]) == (None, {"price": 1})
    stored = shell_json(
        a.env,
        "import json\nfrom messaging.models import Message, StreamEntry\n"
        f"print(json.dumps([StreamEntry.objects.filter(stream={topic!r}).count(),"
        f" Message.objects.filter(topic={topic!r}).count()]))",
    )
    assert stored == [0, 0]


async def test_join_and_leave_are_sent_once_per_user_across_instances(
    cluster, ns, sockets
):
    a, b = cluster
    topic = f"{ns['joins']}:standup-{fresh_user_id()}"
    watcher, _ = await connect_user(a.ws, fresh_user_id("watcher"))
    sockets.append(watcher)
    await subscribe(watcher, topic)
    carol = fresh_user_id("carol")

    first, _ = await connect_user(b.ws, carol)
    second, _ = await connect_user(a.ws, carol)
    sockets += [first, second]
    await subscribe(first, topic)
    joined = await watcher.receive_type("join")
    await subscribe(second, topic)  # carol's second connection: no second join
    await assert_no_message(watcher, 0.5)
    await first.send({"type": "unsubscribe", "topic": topic})
    await first.receive_type("unsubscribed")
    await assert_no_message(watcher, 0.5)  # carol is still there on `second`
    await second.close()
    left = await watcher.receive_type("leave")

    assert joined == {"type": "join", "topic": topic, "user_id": carol}
    assert left == {"type": "leave", "topic": topic, "user_id": carol}


async def test_a_bot_mentioned_in_a_topic_gets_a_personal_copy_saying_where(
    cluster, ns, sockets
):
    a, b = cluster
    topic = f"{ns['public']}:ops-{fresh_user_id()}"
    bot, _ = await connect_user(b.ws, "ci_bot")
    sockets.append(bot)

    reply = await push_topic(a, topic, message="@ci_bot deploy please")

    assert reply["recipients"][0]["user_id"] == "ci_bot"
    (copy,) = await receive_messages(bot, 1)
    assert (copy["to"], copy["topic"], copy["mentions"]) == (
        "ci_bot",
        topic,
        ["ci_bot"],
    )


async def test_subscribing_again_right_after_publishing_sends_no_own_copies(
    cluster, ns, sockets
):
    # Found by the frame fuzzer: the acks come before the live events, and a
    # second subscribe replayed the publisher's own messages from the store.
    a, _ = cluster
    topic = f"{ns['publish']}:echo-{fresh_user_id()}"
    client, _ = await connect_user(a.ws, fresh_user_id())
    sockets.append(client)
    await subscribe(client, topic)
    for n in range(3):
        await client.send({"type": "message", "topic": topic, "text": f"m{n}"})
        assert (await client.receive_type("ack"))["seq"] == n + 1

    again = await subscribe(client, topic)
    await push_topic(a, topic, {"from": "upstream"})

    assert (again["seq"], again["recovered"]) == (3, True)
    (message,) = await receive_messages(client, 1)
    assert (message["seq"], message["data"]) == (4, {"from": "upstream"})
    await assert_no_message(client, 0.3)
    # Asked for with `since`, the client gets everything after it, its own too.
    replay = await subscribe(client, topic, since=0)
    assert replay["recovered"] is True
    assert [m["seq"] for m in await receive_messages(client, 4)] == [1, 2, 3, 4]


async def test_a_typing_signal_reaches_both_instances_and_is_never_stored(
    cluster, ns, sockets
):
    """SPEC §9: a signal goes to every subscriber but the sending socket, on
    every instance, at once, and leaves nothing in the topic's history."""
    a, b = cluster
    topic = f"{ns['publish']}:typing-{fresh_user_id()}"
    alice = fresh_user_id("alice")
    sender, _ = await connect_user(a.ws, alice)
    same_instance, _ = await connect_user(a.ws, fresh_user_id("bob"))
    other_instance, _ = await connect_user(b.ws, fresh_user_id("carol"))
    sockets += [sender, same_instance, other_instance]
    for client in (sender, same_instance, other_instance):
        await subscribe(client, topic)

    await sender.send(
        {
            "type": "signal",
            "event": "typing",
            "data": {"typing": True},
            "topic": topic,
            "ref": "t1",
        }
    )

    for client in (same_instance, other_instance):
        signal = await client.receive_type("signal")
        assert {k: v for k, v in signal.items() if k != "timestamp"} == {
            "type": "signal",
            "event": "typing",
            "data": {"typing": True},
            "from": alice,
            "topic": topic,
        }
        assert signal["timestamp"].endswith("Z")
    await assert_no_message(sender, 0.5)  # no copy, no ack
    async with httpx.AsyncClient(timeout=10) as http:
        history = await http.get(f"{a.http}/api/topics/{topic}/messages")
    assert history.status_code == 200, history.text
    assert history.json()["messages"] == []
    stored = shell_json(
        a.env,
        "import json\nfrom messaging.models import Message, StreamEntry\n"
        f"print(json.dumps([StreamEntry.objects.filter(stream={topic!r}).count(),"
        f" Message.objects.filter(topic={topic!r}).count()]))",
    )
    assert stored == [0, 0]


async def test_a_signal_is_refused_where_the_namespace_does_not_allow_publishing(
    cluster, ns, sockets
):
    a, _ = cluster
    client, _ = await connect_user(a.ws, fresh_user_id())
    sockets.append(client)
    topic = f"{ns['public']}:readonly"

    await client.send(
        {"type": "signal", "event": "typing", "topic": topic, "ref": "t2"}
    )

    error = await client.receive_type("error")
    assert (error["code"], error["ref"], error["topic"]) == ("forbidden", "t2", topic)
