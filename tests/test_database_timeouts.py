"""PostgreSQL statement and lock timeouts (BRIDGE_DB_STATEMENT_TIMEOUT,
BRIDGE_DB_LOCK_TIMEOUT): a request thread holds its database connection while
it waits, so no query may wait or run without end."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.support.credentials import manage
from tests.support.daphne import server_env

PRINT_OPTIONS = (
    "from django.conf import settings; "
    "print(settings.DATABASES['default']['OPTIONS'].get('options'))"
)


def postgres_options(redis_server, **overrides: str) -> str:
    # Nothing connects: settings only build the connection options.
    env = server_env(
        redis_server.url, "postgres://bridge@127.0.0.1:1/bridge", **overrides
    )
    done = manage(env, "shell", "--no-imports", "-c", PRINT_OPTIONS)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_postgres_connections_get_both_timeouts_by_default(redis_server):
    assert postgres_options(redis_server) == (
        "-c statement_timeout=30000 -c lock_timeout=10000"
    )


def test_the_timeouts_come_from_their_settings(redis_server):
    options = postgres_options(
        redis_server, BRIDGE_DB_STATEMENT_TIMEOUT="2.5", BRIDGE_DB_LOCK_TIMEOUT="0"
    )
    assert options == "-c statement_timeout=2500 -c lock_timeout=0"


@pytest.mark.django_db
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (make test-postgres)"
)
def test_a_postgres_session_runs_with_the_timeouts():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "30s"
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "10s"
