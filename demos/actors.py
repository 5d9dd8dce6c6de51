"""The people in the demos: alice, bob, carol, mallory, a lender, and the bank.

Every demo gets *fresh* keys for its actors, derived from a random run id,
the demo's name and the actor's name::

    secret = SHA-256("toychain demo run " + run_id + " " + demo + " " + name)

So "alice has 10 TOY" is exactly true when the demo starts, even on a shared
devnet where the well-known demo account alice (PROTOCOL.md section 2) holds
thousands: the demo's alice is a new wallet that the bank pays 10 TOY.

The *bank* is whoever funds the actors. On a devnet the demo starts itself it
is a fresh key that the demo mines blocks to; on a running devnet it is the
well-known demo account of a mining node, whose key anyone can compute.
"""

import hashlib
import secrets
from dataclasses import dataclass
from functools import cached_property

from chain.address import encode_address
from chain.keys import demo_private_key, is_valid_private_key, owner_of, public_key


@dataclass(frozen=True)
class Actor:
    name: str
    secret: bytes
    about: str = "a fresh wallet for this demo"

    @cached_property
    def pubkey(self) -> bytes:
        return public_key(self.secret)

    @cached_property
    def owner(self) -> bytes:
        return owner_of(self.pubkey)

    @cached_property
    def address(self) -> str:
        return encode_address(self.owner)

    def __str__(self) -> str:
        return self.name


def new_run_id() -> str:
    return secrets.token_hex(8)


def fresh_actor(run_id: str, demo: str, name: str, about: str = "a fresh wallet for this demo") -> Actor:
    """A new key for ``name`` in ``demo`` of this run (see the module docstring)."""
    seed = f"toychain demo run {run_id} {demo} {name}".encode()
    secret = hashlib.sha256(seed).digest()
    while not is_valid_private_key(secret):  # astronomically unlikely, but exact
        secret = hashlib.sha256(secret).digest()
    return Actor(name, secret, about)


def demo_account(name: str, about: str | None = None) -> Actor:
    """The well-known demo account ``name`` (its key is public: never for real money)."""
    return Actor(name, demo_private_key(name), about or f"the well-known demo account {name}")


class Cast:
    """The actors of one demo: ``cast["alice"]`` is created on first use."""

    def __init__(self, run_id: str, demo: str):
        self.run_id = run_id
        self.demo = demo
        self._actors: dict[str, Actor] = {}

    def __getitem__(self, name: str) -> Actor:
        if name not in self._actors:
            self._actors[name] = fresh_actor(self.run_id, self.demo, name)
        return self._actors[name]
