"""Pseudonymization of patient identifiers at ingestion (个人信息去标识化).

A keyed BLAKE2b MAC maps a patient identifier to a stable pseudonym: the same person
gets the same pseudonym in every stream (so cross-stream rules still link them), and
without the key the pseudonym cannot be reversed or recomputed from a guessed id.

>>> p = Pseudonymizer(b"a test key that is long enough!!")
>>> p("110101199001011234")
'P6da028bca31c5137a972'
>>> p("110101199001011234") == p("110101199001011234")
True
"""
from __future__ import annotations

import hashlib
import os

#: The key used when none is configured. Fine for the simulator; never for real data.
DEVELOPMENT_KEY = b"zhijian-development-key-not-for-real-data"
KEY_ENV = "ZHIJIAN_PSEUDONYM_KEY"


class Pseudonymizer:
    """Callable: patient identifier → ``P`` + 20 hex characters (80 bits)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymization key must be at least 16 bytes")
        self._key = key[:64]

    @classmethod
    def from_env(cls) -> "Pseudonymizer":
        key = os.environ.get(KEY_ENV)
        return cls(key.encode() if key else DEVELOPMENT_KEY)

    def __call__(self, identifier: str) -> str:
        digest = hashlib.blake2b(identifier.encode(), key=self._key, digest_size=10).hexdigest()
        return "P" + digest
