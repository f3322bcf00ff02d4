"""The keys that BRIDGE_JWT_KEYS names, and the algorithms each may verify
(SPEC §10).

A key is an HMAC secret (HS256/384/512) or a PEM public key: RSA (RS*/PS*),
EC (ES256, ES384, ES512 by curve) or Ed25519/Ed448 (EdDSA). Each key verifies
only its own family, so a token cannot choose how it is checked: an RSA public
key is never used as an HMAC secret (algorithm confusion), and `none` is no
key's algorithm. bridge_project/env.py parses the variable with these helpers
at start-up, so a bad key stops the process naming the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_PEM_START = "-----BEGIN"


@dataclass(frozen=True)
class VerificationKey:
    """One configured key: what PyJWT verifies with, and for which `alg`s."""

    key: Any
    algorithms: tuple[str, ...]
    kind: str  # "hmac", "rsa", "ec" or "eddsa", for messages and docs


def parse_key(text: str) -> VerificationKey:
    """A key from its configured text; raises ValueError saying what is wrong
    (never quoting a secret)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a key is empty")
    stripped = text.strip()
    if not stripped.startswith(_PEM_START):
        return _secret(text)
    # Environment files cannot hold newlines easily: accept "\n" escapes.
    pem = stripped.replace("\\n", "\n").encode("ascii", "replace")
    if b"PRIVATE KEY" in pem.split(b"\n", 1)[0]:
        raise ValueError("a PEM private key was given: configure the public key only")
    try:
        public = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ValueError("a PEM key could not be read as a public key") from None
    return public_key(public)


def _secret(text: str) -> VerificationKey:
    secret = text.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"an HMAC secret is shorter than {MIN_SECRET_BYTES} bytes "
            f"({len(secret)}); use a longer one"
        )
    return VerificationKey(secret, HMAC_ALGORITHMS, "hmac")


def public_key(public: Any) -> VerificationKey:
    """A public key object (cryptography's) and its algorithms; raises
    ValueError for other objects (an HMAC key from a JWKS) or weak keys."""
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"an RSA key has {public.key_size} bits; at least {MIN_RSA_BITS}"
            )
        return VerificationKey(public, RSA_ALGORITHMS, "rsa")
    if isinstance(public, ec.EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(public.curve.name)
        if algorithm is None:
            raise ValueError(f"an EC key's curve {public.curve.name} is not supported")
        return VerificationKey(public, (algorithm,), "ec")
    if isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return VerificationKey(public, ("EdDSA",), "eddsa")
    raise ValueError(f"unsupported public key type {type(public).__name__}")


def parse_keys(texts: tuple[str, ...]) -> tuple[VerificationKey, ...]:
    return tuple(parse_key(text) for text in texts)
