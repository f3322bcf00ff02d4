"""BRIDGE_JWT_* (SPEC §10): parsed at start-up; a malformed value stops the
process naming the variable, and never quotes a key (it may be a secret)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.exceptions import ImproperlyConfigured

from bridge_project import env
from tests.support.daphne import REPO
from tests.support.jwts import HS_SECRET, key_pair

NAME = "BRIDGE_JWT_KEYS"


def keys(raw: str) -> tuple[str, ...]:
    return env.env_jwt_keys(NAME, environ={NAME: raw})


def refusal(raw: str) -> str:
    with pytest.raises(ImproperlyConfigured) as caught:
        keys(raw)
    return str(caught.value)


def test_unset_or_blank_means_no_keys():
    assert env.env_jwt_keys(NAME, environ={}) == ()
    assert keys("  ") == ()


def test_one_key_or_a_json_list_of_keys():
    pem = key_pair("RS256").public_pem
    assert keys(HS_SECRET) == (HS_SECRET,)
    assert keys(pem) == (pem.strip(),)
    assert keys(json.dumps([HS_SECRET, pem])) == (HS_SECRET, pem)


def test_a_pem_may_use_backslash_n_escapes_as_env_files_need():
    escaped = key_pair("ES256").public_pem.strip().replace("\n", "\\n")
    assert keys(escaped) == (escaped,)


def _private_pem() -> str:
    private = ec.generate_private_key(ec.SECP256R1())
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _weak_rsa_pem() -> str:
    public = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return (
        public.public_key()
        .public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        .decode()
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("too-short-secret", "shorter than 32 bytes"),
        ("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----", "PEM"),
        ("[", "not valid JSON"),
        ("[]", "non-empty JSON list"),
        ('["' + "s" * 40 + '", 3]', "non-empty JSON list"),
        (json.dumps(["s" * 40, "short"]), "key 1"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(raw, problem):
    message = refusal(raw)
    assert NAME in message
    assert problem in message
    assert "short" not in message.replace("shorter", "")  # the secret is not quoted


def test_a_private_key_is_refused():
    assert "public key only" in refusal(_private_pem())


def test_a_weak_rsa_key_is_refused():
    assert "at least 2048" in refusal(_weak_rsa_pem())


@pytest.mark.parametrize("raw", ["ftp://x/jwks", "jwks.json", "https://", "http:///"])
def test_a_jwks_url_must_be_http_or_https(raw):
    name = "BRIDGE_JWT_JWKS_URL"
    with pytest.raises(ImproperlyConfigured, match=name):
        env.env_url(name, environ={name: raw})


def test_a_jwks_url_is_kept_as_given():
    name = "BRIDGE_JWT_JWKS_URL"
    url = "https://login.example.com/.well-known/jwks.json"
    assert env.env_url(name, environ={name: url}) == url
    assert env.env_url(name, environ={}) is None


def _django_setup(**variables: str) -> subprocess.CompletedProcess[str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BRIDGE_", "DJANGO_")) and key != "DATABASE_URL"
    }
    environ.update(DJANGO_SETTINGS_MODULE="bridge_project.settings", DEBUG="1")
    environ.update(variables)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "variables",
    [
        {NAME: "short"},
        {"BRIDGE_JWT_JWKS_URL": "not-a-url"},
        {"BRIDGE_JWT_USER_CLAIM": " "},
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variables):
    result = _django_setup(**variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert next(iter(variables)) in result.stderr


def test_good_values_let_django_start():
    result = _django_setup(
        BRIDGE_JWT_KEYS=json.dumps([HS_SECRET, key_pair("EdDSA").public_pem]),
        BRIDGE_JWT_JWKS_URL="https://login.example.com/.well-known/jwks.json",
        BRIDGE_JWT_AUDIENCE="bridge",
        BRIDGE_JWT_ISSUER="https://login.example.com/",
        BRIDGE_JWT_USER_CLAIM="user_id",
    )
    assert result.returncode == 0, result.stderr
