"""Production settings (SPEC §4, §7): `check --deploy` is clean with a production
env, and open mode refuses to start when DEBUG is off."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bridge_project.embedded_redis import EmbeddedRedis, free_port
from bridge_project.serve import daphne_command
from tests.support.credentials import manage
from tests.support.daphne import REPO, server_env

pytestmark = pytest.mark.timeout(60)

# 50+ characters, 5+ distinct ones, no "django-insecure-" prefix: what
# security.W009 asks of a production SECRET_KEY.
PRODUCTION_SECRET_KEY = "k3Jd8!pQz@Lm2#Xv9$Rt7%Wn4^Yb6&Hc1*Fg5(Se0)Ua-Ko=Ji+Ml"


def production_env(
    redis: EmbeddedRedis, tmp_path: Path, **overrides: str
) -> dict[str, str]:
    production = {
        "DEBUG": "0",
        "SECRET_KEY": PRODUCTION_SECRET_KEY,
        "BRIDGE_AUTH_MODE": "token",
        "ALLOWED_HOSTS": "bridge.example.com",
    }
    database_url = f"sqlite:///{tmp_path / 'prod.sqlite3'}"
    return server_env(redis.url, database_url, **{**production, **overrides})


def test_check_deploy_has_no_issues_with_a_production_env(redis_server, tmp_path):
    done = manage(production_env(redis_server, tmp_path), "check", "--deploy")
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


def test_token_mode_is_the_default_when_unset(redis_server, tmp_path):
    env = production_env(redis_server, tmp_path)
    del env["BRIDGE_AUTH_MODE"]
    code = "from django.conf import settings; print(settings.BRIDGE_AUTH_MODE)"
    done = manage(env, "shell", "--no-imports", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "token"


def test_check_deploy_flags_a_weak_secret_key(redis_server, tmp_path):
    # The clean result above means something: the same check does speak up.
    env = production_env(redis_server, tmp_path, SECRET_KEY="short")
    done = manage(env, "check", "--deploy")
    assert "security.W009" in done.stdout + done.stderr


def test_open_mode_with_debug_off_stops_manage_py_naming_the_variable(
    redis_server, tmp_path
):
    env = production_env(redis_server, tmp_path, BRIDGE_AUTH_MODE="open")
    done = manage(env, "check")
    assert done.returncode != 0
    assert "BRIDGE_AUTH_MODE" in done.stderr
    assert "ImproperlyConfigured" in done.stderr


def test_open_mode_with_debug_off_stops_daphne_naming_the_variable(
    redis_server, tmp_path
):
    env = production_env(redis_server, tmp_path, BRIDGE_AUTH_MODE="open")
    daphne = subprocess.run(
        daphne_command("127.0.0.1", free_port(), 65536),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert daphne.returncode != 0
    assert "BRIDGE_AUTH_MODE" in daphne.stdout + daphne.stderr
