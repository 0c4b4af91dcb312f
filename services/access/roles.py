"""API keys and roles: who may do what. Keys are stored hashed; the secret is shown once.

A key reads `hs_<key_id>_<secret>`: the key id finds the row, the secret (32 random bytes)
is compared by hash in constant time. The secret has full entropy, so a single SHA-256 is
enough: there is nothing to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from ingest.rules import show

PREFIX = "hs"


class Role(StrEnum):
    INGEST = "ingest"  # POST pings only: radio gateways
    VIEWER = "viewer"  # read presence, dwell, events, fences: control rooms, dashboards
    ADMIN = "admin"  # everything: fences, keys, the audit log
    OFFICER = "officer"  # one officer's own dosage and feedback (bound to an officer_id): phones


#: What each role may do, beyond itself: an admin may do what a viewer or gateway may. A viewer may
#: do what an officer may (send feedback), but the officer's own routes also need the key bound to
#: an officer (api/deps.py), so no viewer reads "its own" data through them.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.INGEST: frozenset({Role.INGEST}),
    Role.OFFICER: frozenset({Role.OFFICER}),
    Role.VIEWER: frozenset({Role.VIEWER, Role.OFFICER}),
    Role.ADMIN: frozenset({Role.ADMIN, Role.VIEWER, Role.INGEST, Role.OFFICER}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a valid key."""

    key_id: str
    name: str
    role: Role
    officer_id: str | None = None  # set for officer keys only: whose data the key may see
    device_id: str | None = None  # set for device-bound ingest keys (phones): the one device it posts for

    def may(self, needed: Role) -> bool:
        return needed in GRANTS[self.role]

    def posts_for(self, device_id: str) -> bool:
        """Whether this key may post device_id's pings: a device-bound key posts its own only."""
        return self.device_id is None or device_id == self.device_id

    def device_refusal(self, device_id: str) -> str:
        """Why a device-bound key may not post device_id's pings."""
        return f"this key is bound to device {show(self.device_id)} and may not post for {show(device_id)}"


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    token: str  # shown once, never stored
    secret_hash: str


def new_key() -> NewKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, f"{PREFIX}_{key_id}_{secret}", hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


#: Compared with when a key id is unknown, so that refusal costs what a wrong secret costs (no
#: well-formed token has an empty secret, so nothing matches it).
UNKNOWN_KEY_HASH = hash_secret("")


def split_token(token: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


#: Requests per second a key may make on average, and the burst it may make at once.
RATE_PER_S = 50.0
BURST = 200.0
#: Failed key checks one client address may make per second on average, and at once: a gateway
#: with a mistyped key is told 401 a few times; a key guesser is slowed to a crawl.
FAILED_PER_S = 1.0
FAILED_BURST = 20.0


@dataclass(slots=True)
class RateLimiter:
    """A token bucket per key: a runaway dashboard cannot starve the control room."""

    rate: float = RATE_PER_S
    burst: float = BURST
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def exhausted(self, key: str, now: float) -> bool:
        """Whether allow would refuse key now (nothing is taken)."""
        tokens, at = self.buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate) < 1.0

    def allow(self, key: str, now: float) -> bool:
        tokens, at = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1.0, now)
        return True
