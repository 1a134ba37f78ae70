"""Pseudonymization of patient identifiers at ingestion (个人信息去标识化).

HMAC-SHA-256 under a secret key maps a patient identifier to a stable pseudonym: the same person
gets the same pseudonym in every stream (so cross-stream rules still link them), and without the
key the pseudonym can be neither reversed nor recomputed from a guessed identifier — a national
id number is a small space (birth date × district × sequence), so an unkeyed or known key would be
broken in seconds. Hence:

* the key is at least :data:`MIN_KEY_BYTES` (32) bytes, taken whole (HMAC hashes a longer key);
* there is no default key: the worker refuses to start without ``ZHIJIAN_PSEUDONYM_KEY``; the demo,
  ``evaluate`` and ``bench`` draw a random key per run and say so;
* an identifier is normalised first — Unicode NFKC, spaces and zero-width characters removed,
  upper case (the check letter ``x`` of a resident id is ``X``) — so one person is one pseudonym
  however a system typed them;
* :attr:`Pseudonymizer.key_id` (the first 8 hex digits of SHA-256 of the key) names the key in logs
  and documentation, so a key rotation can be told apart: pseudonyms under a new key are new.

>>> p = Pseudonymizer(b"a test key of thirty-two bytes!!")
>>> p("11010119900101123x")
'P06acec1297697769682b'
>>> p(" 11010119900101123X") == p("１１０１０１１９９００１０１１２３Ｘ") == p("110101199001011\\u200b23x") == p("11010119900101123x")
True
>>> Pseudonymizer(b"short")
Traceback (most recent call last):
ValueError: the pseudonymization key must be at least 32 bytes (got 5)
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
import unicodedata

KEY_ENV = "ZHIJIAN_PSEUDONYM_KEY"
MIN_KEY_BYTES = 32
#: Pseudonyms of the most recent identifiers kept in memory (about 10 MB at most).
CACHE_SIZE = 65536
_INVISIBLE = re.compile(r"[\s\u200b-\u200d\u2060\ufeff]+")


class MissingKey(ValueError):
    """No pseudonymization key is configured."""


def normalise(identifier: str) -> str:
    """The form an identifier is hashed in: NFKC, no spaces or zero-width characters, upper case."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", str(identifier))).upper()


class Pseudonymizer:
    """Callable: patient identifier → ``P`` + 20 hex characters (80 bits of HMAC-SHA-256)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the pseudonymization key must be at least {MIN_KEY_BYTES} bytes (got {len(key)})")
        self._key = bytes(key)
        self.key_id = hashlib.sha256(self._key).hexdigest()[:8]
        # a patient comes back (a claim and its prescriptions, a chronic patient every month): the recent ones'
        # pseudonyms are kept in memory, as the identifiers themselves are while their events are handled
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._pseudonym)

    @classmethod
    def from_env(cls) -> "Pseudonymizer":
        key = os.environ.get(KEY_ENV)
        if not key:
            raise MissingKey(f"no pseudonymization key: set {KEY_ENV} to a secret of {MIN_KEY_BYTES}+ bytes "
                             "(e.g. `openssl rand -hex 32`); zhijian does not run on a default key")
        return cls(key.encode())

    @staticmethod
    def random_key() -> str:
        """A fresh key for a run whose pseudonyms need not outlive it (demo, evaluate, bench)."""
        return secrets.token_hex(32)

    def __call__(self, identifier: str) -> str:
        return self._cached(identifier) if type(identifier) is str else self._pseudonym(identifier)

    def once(self, identifier: str) -> str:
        """The pseudonym, without keeping the identifier in the cache (a supervisor's look-up in the workbench)."""
        return self._pseudonym(identifier)

    def _pseudonym(self, identifier: str) -> str:
        digest = hmac.new(self._key, normalise(identifier).encode(), hashlib.sha256).hexdigest()
        return "P" + digest[:20]
