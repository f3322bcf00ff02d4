"""BRIDGE_TOPIC_NAMESPACES (SPEC §8): parsing fails loudly naming the variable,
and start-up creates missing namespaces without changing existing ones."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from bridge_project import env
from bridge_project.embedded_redis import EmbeddedRedis
from messaging.models import TopicNamespace
from messaging.streams import namespace_setup
from messaging.streams.namespaces import namespace_rules
from tests.support.daphne import DaphneProcess, migrate, server_env

NAME = "BRIDGE_TOPIC_NAMESPACES"
REPO = Path(__file__).resolve().parent.parent


def parse(raw: str) -> dict:
    return env.env_topic_namespaces(NAME, environ={NAME: raw})


def refusal(raw: str) -> str:
    with pytest.raises(ImproperlyConfigured) as caught:
        parse(raw)
    message = str(caught.value)
    assert NAME in message
    return message


# --- parsing ------------------------------------------------------------------------


def test_unset_or_blank_means_no_namespaces():
    assert env.env_topic_namespaces(NAME, environ={}) == {}
    assert parse("") == {}
    assert parse("   ") == {}


def test_short_form_names_the_subscribe_policy():
    assert parse(" room:members, news:public,doc:token ,") == {
        "room": {"subscribe": "members"},
        "news": {"subscribe": "public"},
        "doc": {"subscribe": "token"},
    }


def test_short_form_bare_name_takes_the_defaults():
    assert parse("room") == {"room": {}}


def test_json_form_keeps_every_setting_given():
    raw = json.dumps(
        {
            "room": {
                "subscribe": "members",
                "client_publish": "members",
                "join_leave": True,
            },
            "ticker": {"subscribe": "public", "history_size": 0},
            "chat": {
                "history_ttl": 60,
                "presence": False,
                "receipts": True,
                "client_publish": "subscribers",
            },
            "plain": {},
        }
    )
    assert parse(raw) == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("user:public", "'user'"),
        ("Room:public", "'Room'"),
        ("room:everyone", "everyone"),
        ("room:", "subscribe"),
        ("room:public,room:members", "twice"),
        ("9lives:public", "9lives"),
        ("{not json", "JSON"),
        ('["room"]', "JSON object"),
        ('{"room": "public"}', "JSON object"),
        ('{"room": {}, "room": {}}', "twice"),
        ('{"room": {"colour": "red"}}', "colour"),
        ('{"room": {"subscribe": "all"}}', "subscribe"),
        ('{"room": {"client_publish": "anyone"}}', "client_publish"),
        ('{"room": {"history_size": -1}}', "history_size"),
        ('{"room": {"history_size": "10"}}', "history_size"),
        ('{"room": {"history_size": true}}', "history_size"),
        ('{"room": {"history_size": 1.5}}', "history_size"),
        ('{"room": {"history_ttl": 0}}', "history_ttl"),
        ('{"room": {"history_ttl": 99999999999}}', "history_ttl"),
        ('{"room": {"presence": "yes"}}', "presence"),
        ('{"room": {"join_leave": 1}}', "join_leave"),
        ('{"user": {}}', "'user'"),
        ('{"a b": {}}', "'a b'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_the_problem(raw, named):
    assert named in refusal(raw)


def test_choices_agree_with_the_model():
    assert set(env.TOPIC_SUBSCRIBE) == set(TopicNamespace.Subscribe.values)
    assert set(env.TOPIC_CLIENT_PUBLISH) == set(TopicNamespace.ClientPublish.values)


def _django_setup(value: str) -> subprocess.CompletedProcess[str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BRIDGE_", "DJANGO_")) and key != "DATABASE_URL"
    }
    environ.update(DJANGO_SETTINGS_MODULE="bridge_project.settings", DEBUG="1")
    environ[NAME] = value
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_value_stops_start_up_naming_the_variable():
    result = _django_setup('{"room": {"history_size": -5}}')
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert NAME in result.stderr


def test_a_good_value_lets_django_start():
    assert _django_setup("room:members,news:public").returncode == 0


# --- namespaces_ensure --------------------------------------------------------------


@pytest.mark.django_db
def test_ensure_creates_missing_namespaces_with_their_settings():
    created = namespace_setup.namespaces_ensure(
        namespaces={"room": {"subscribe": "public", "history_size": 0}, "doc": {}}
    )
    assert created == ["room", "doc"]
    room = TopicNamespace.objects.get(name="room")
    assert (room.subscribe, room.history_size, room.history_ttl) == (
        "public",
        0,
        604800,
    )
    assert TopicNamespace.objects.get(name="doc").subscribe == "members"
    assert namespace_rules("room").live_only


@pytest.mark.django_db
def test_ensure_never_changes_an_existing_namespace():
    TopicNamespace.objects.create(name="room", subscribe="token", history_size=5)
    created = namespace_setup.namespaces_ensure(
        namespaces={"room": {"subscribe": "public", "history_size": 0}}
    )
    assert created == []
    room = TopicNamespace.objects.get(name="room")
    assert (room.subscribe, room.history_size) == ("token", 5)


def test_ensure_at_startup_on_an_unmigrated_database_only_warns(caplog):
    failing = mock.patch.object(
        namespace_setup, "namespaces_ensure", side_effect=DatabaseError("no table")
    )
    with failing, caplog.at_level(logging.WARNING):
        namespace_setup.namespaces_ensure_at_startup(namespaces={"room": {}})
    assert NAME in caplog.text


def test_ensure_at_startup_with_nothing_configured_does_nothing():
    with mock.patch.object(namespace_setup, "namespaces_ensure") as ensure:
        namespace_setup.namespaces_ensure_at_startup(namespaces={})
    ensure.assert_not_called()


@pytest.mark.e2e
@pytest.mark.timeout(90)
def test_a_server_started_with_the_setting_has_the_namespaces(
    redis_server: EmbeddedRedis, tmp_path: Path
):
    environ = server_env(
        redis_server.url,
        f"sqlite:///{tmp_path / 'bridge.sqlite3'}",
        BRIDGE_TOPIC_NAMESPACES='{"room": {"subscribe": "public", "join_leave": true}}',
    )
    migrate(environ)
    server = DaphneProcess(environ, tmp_path / "daphne.log")
    try:
        server.start()
        reply = requests.get(f"{server.http}/api/topics/room:42", timeout=10)
        assert reply.status_code == 200, reply.text
        assert reply.json()["namespace"]["subscribe"] == "public"
        assert reply.json()["namespace"]["join_leave"] is True
        missing = requests.get(f"{server.http}/api/topics/news:1", timeout=10)
        assert missing.status_code == 404
    finally:
        server.stop()
