"""Topic names, namespace policies and topic frames (SPEC §8), below the doors."""

from __future__ import annotations

import re

import pytest

from messaging.models import TopicMember, TopicNamespace
from messaging.realtime.client_frames import FrameError, parse_client_frame
from messaging.streams import topics
from messaging.streams.names import (
    InvalidTopic,
    parse_topic,
    personal_stream,
    stream_group,
    stream_owner,
)
from messaging.streams.namespaces import forget_cached_rules

# channels' own rule for group names (channels/layers.py).
GROUP_NAME = re.compile(r"^[a-zA-Z\d\-_.]+$")


@pytest.mark.parametrize(
    "name",
    [
        "room:42",
        "doc:team=7:spec.md",
        "support:a@b.c",
        "x:-",
        "a" * 32 + ":" + "n" * 128,
    ],
)
def test_valid_topic_names_parse_and_get_a_valid_group(name):
    topic = parse_topic(name)
    assert str(topic) == name
    group = stream_group(name)
    assert GROUP_NAME.match(group) and len(group) < 100
    assert stream_owner(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "room",
        ":42",
        "Room:42",
        "user:alice",
        "room:",
        "room::x",
        "room:a b",
        "room:" + "n" * 129,
        "a" * 33 + ":x",
        42,
        None,
    ],
)
def test_invalid_topic_names_are_refused(name):
    with pytest.raises(InvalidTopic):
        parse_topic(name)


def test_personal_streams_keep_their_users_group():
    assert personal_stream("alice") == "user:alice"
    assert stream_owner("user:alice") == "alice"
    assert stream_group("user:alice") == "user.alice"


def test_different_topics_get_different_groups():
    assert stream_group("room:1") != stream_group("room:2")


@pytest.fixture
def namespaces(db):
    forget_cached_rules()
    TopicNamespace.objects.create(name="pub", subscribe="public")
    TopicNamespace.objects.create(name="club", client_publish="members")
    TopicNamespace.objects.create(name="tok", subscribe="token")
    TopicNamespace.objects.create(
        name="chat", subscribe="public", client_publish="subscribers"
    )
    TopicMember.objects.create(topic="club:1", user_id="member")
    yield
    forget_cached_rules()


@pytest.mark.parametrize(
    ("user", "topic", "grants", "outcome"),
    [
        ("anyone", "pub:1", (), "ok"),
        ("member", "club:1", (), "ok"),
        ("stranger", "club:1", (), "forbidden"),
        ("stranger", "club:1", ("club:1",), "ok"),
        ("stranger", "club:1", ("club:*",), "ok"),
        ("stranger", "club:1", ("club:2",), "forbidden"),
        ("stranger", "tok:9", ("tok:*",), "ok"),
        ("member", "tok:9", (), "forbidden"),
        ("stranger", "tok:9", ("pub:*",), "forbidden"),
        ("anyone", "nope:1", (), "not_found"),
        ("anyone", "user:alice", (), "invalid"),
    ],
)
def test_who_may_subscribe(namespaces, user, topic, grants, outcome):
    try:
        topics.may_subscribe(user_id=user, topic=topic, grants=grants)
    except topics.TopicRefused as refused:
        assert refused.code == outcome
    else:
        assert outcome == "ok"


@pytest.mark.parametrize(
    ("user", "topic", "subscribed", "allowed"),
    [
        ("member", "club:1", False, True),
        ("stranger", "club:1", True, False),
        ("anyone", "chat:1", True, True),
        ("anyone", "chat:1", False, False),
        ("anyone", "pub:1", True, False),  # client_publish: none
    ],
)
def test_who_may_publish(namespaces, user, topic, subscribed, allowed):
    if allowed:
        topics.may_publish(user_id=user, topic=topic, subscribed=subscribed)
    else:
        with pytest.raises(topics.TopicRefused) as refused:
            topics.may_publish(user_id=user, topic=topic, subscribed=subscribed)
        assert refused.value.code == "forbidden"


def test_membership_add_and_remove_say_whether_anything_changed(db):
    assert topics.member_add(topic="room:1", user_id="ann") is True
    assert topics.member_add(topic="room:1", user_id="ann") is False
    assert topics.user_topics("ann") == ["room:1"]
    assert topics.member_remove(topic="room:1", user_id="ann") is True
    assert topics.member_remove(topic="room:1", user_id="ann") is False


def test_subscribe_frames_parse_topic_since_and_ref():
    frame = parse_client_frame(
        '{"type": "subscribe", "topic": "room:1", "since": 5, "ref": "a"}'
    )
    assert (frame.type, frame.topic, frame.since, frame.ref) == (
        "subscribe",
        "room:1",
        5,
        "a",
    )
    frame = parse_client_frame('{"type": "unsubscribe", "topic": "room:1"}')
    assert (frame.type, frame.topic, frame.since) == ("unsubscribe", "room:1", None)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ('{"type": "subscribe"}', None),
        ('{"type": "subscribe", "topic": 7}', None),
        ('{"type": "subscribe", "topic": "room"}', "room"),
        ('{"type": "subscribe", "topic": "room:1", "since": -1}', "room:1"),
        ('{"type": "subscribe", "topic": "room:1", "since": "3"}', "room:1"),
        ('{"type": "subscribe", "topic": "room:1", "since": true}', "room:1"),
        (
            '{"type": "subscribe", "topic": "room:1", "since": 9223372036854775808}',
            "room:1",
        ),
        ('{"type": "unsubscribe", "topic": "user:bob"}', "user:bob"),
        ('{"type": "message", "text": "hi", "topic": "x"}', "x"),
    ],
)
def test_bad_topic_frames_are_invalid_and_name_the_topic_when_they_can(text, topic):
    with pytest.raises(FrameError) as refused:
        parse_client_frame(text)
    assert refused.value.code == "invalid_frame"
    assert refused.value.topic == topic


def test_a_message_names_either_to_or_topic():
    with pytest.raises(FrameError) as refused:
        parse_client_frame(
            '{"type": "message", "text": "hi", "to": "a", "topic": "r:1"}'
        )
    assert refused.value.code == "invalid_frame"
    frame = parse_client_frame('{"type": "message", "text": "hi", "topic": "r:1"}')
    assert (frame.topic, frame.to) == ("r:1", None)
