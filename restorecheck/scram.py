"""SCRAM-SHA-256 password verifiers as PostgreSQL stores them (RFC 5802 and RFC 7677).

restorecheck gives each throwaway cluster its own admin password without ever sending the
password itself to the server: it computes the verifier here and hands the server that, the way
``psql``'s ``\\password`` does. A verifier lets a server check a login; it does not let anyone
log in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

DEFAULT_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)
SALT_BYTES = 16  # PostgreSQL's SCRAM_DEFAULT_SALT_LEN

VERIFIER_RE = re.compile(r"SCRAM-SHA-256\$[1-9][0-9]*:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+")


def scram_sha256_verifier(password: str, *, salt: bytes | None = None,
                          iterations: int = DEFAULT_ITERATIONS) -> str:
    """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (base64) for ``password``.

    Only printable ASCII passwords are accepted: SASLprep leaves them unchanged, so the verifier is
    the one PostgreSQL would compute (restorecheck makes its passwords itself)."""
    if not password or not all(" " <= c <= "~" for c in password):
        raise ValueError("the password must be non-empty printable ASCII")
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
