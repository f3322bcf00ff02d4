"""JWTs for the tests of SPEC §10: keys the tests generate, tokens signed with
them (including the forged kinds a server must refuse), and a JWKS served by
a small HTTP server on loopback."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HS_SECRET = "bridge-tests-jwt-hmac-secret-0123456789abcdef"
AUDIENCE = "bridge-tests"
ISSUER = "https://login.example.test/"


@dataclass(frozen=True)
class KeyPair:
    alg: str
    private: Any
    public_pem: str

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)

    def jwk(self, kid: str) -> dict[str, Any]:
        """The public key as a JWKS entry."""
        data = json.loads(
            jwt.get_algorithm_by_name(self.alg).to_jwk(self.private.public_key())
        )
        return {**data, "kid": kid, "use": "sig", "alg": self.alg}


def _pem(public: Any) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@functools.cache
def key_pair(alg: str, n: int = 0) -> KeyPair:
    """A fresh key pair per (alg, n), made once per test process."""
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(alg)
    return KeyPair(alg, private, _pem(private.public_key()))


def claims(user: Any = "alice", *, ttl: float = 300, **extra: Any) -> dict[str, Any]:
    """Claims that the test servers accept, with `extra` overriding them."""
    now = time.time()
    found = {
        "sub": user,
        "exp": int(now + ttl),
        "iat": int(now) - 1,
        "aud": AUDIENCE,
        "iss": ISSUER,
    }
    found.update(extra)
    return {key: value for key, value in found.items() if value is not None}


def hs256(payload: dict[str, Any], secret: str = HS_SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """A JWT signed with HMAC-SHA256 by hand, whatever `header` says: PyJWT
    itself refuses to make the forgeries below."""
    signing_input = (
        _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def alg_none(payload: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return header + "." + _b64(json.dumps(payload).encode()) + "."


def rsa_pem_as_hmac_secret(payload: dict[str, Any]) -> str:
    """Algorithm confusion: HS256 keyed with the server's RSA public key PEM."""
    pem = key_pair("RS256").public_pem.encode()
    return handmade({"alg": "HS256", "typ": "JWT"}, payload, pem)


def server_keys() -> str:
    """BRIDGE_JWT_KEYS for the test servers: one of each kind, as JSON."""
    return json.dumps(
        [
            HS_SECRET,
            key_pair("RS256").public_pem,
            key_pair("ES256").public_pem,
            key_pair("EdDSA").public_pem,
        ]
    )


@dataclass
class Jwks:
    """A JWKS endpoint on loopback: `keys` may change while it runs; `hang`
    makes it accept connections and never answer."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    hang: bool = False
    url: str = ""


@contextmanager
def serving_jwks(jwks: Jwks) -> Iterator[Jwks]:
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            jwks.requests += 1
            if jwks.hang:
                release.wait(30)
                return
            body = json.dumps({"keys": jwks.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    jwks.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield jwks
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"
