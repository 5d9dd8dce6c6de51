"""Network parameters (PROTOCOL.md section 6), the block subsidy and the genesis blocks.

Two networks share every rule and differ in numbers: ``regtest`` (trivial
proof of work, blocks on request, for tests) and ``devnet`` (real but easy
proof of work every 5 seconds, for a local multi-node network). Each has its
own 4-byte magic mixed into every signature hash, so a transaction signed
for one network is invalid on the other.

Each genesis block pays 50 TOY to the demo account alice; its nonce is
hard-coded (the smallest that meets the target) and checked by the tests.
"""

from dataclasses import dataclass, field

from .amounts import COIN
from .block import Block, Header, merkle_root
from .keys import demo_private_key, owner_of, public_key
from .pow import compact_to_target
from .tx import TxOut, coinbase_tx

GENESIS_TIME = 1764547200
GENESIS_REWARD = 50 * COIN
MAX_BLOCK_SIZE = 1_000_000
MAX_FUTURE_SECONDS = 2 * 60 * 60


@dataclass(frozen=True)
class Network:
    name: str
    magic: bytes
    pow_limit_bits: int
    retarget_interval: int | None
    target_spacing: int | None
    halving_interval: int
    coinbase_maturity: int
    default_port: int
    genesis_nonce: int
    genesis: Block = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "genesis", make_genesis(self.pow_limit_bits, self.genesis_nonce))

    @property
    def pow_limit(self) -> int:
        return compact_to_target(self.pow_limit_bits)[0]

    def subsidy(self, height: int) -> int:
        """``(50 * COIN) >> (height // halving_interval)``; 0 once the shift reaches 64."""
        halvings = height // self.halving_interval
        return 0 if halvings >= 64 else (50 * COIN) >> halvings


def make_genesis(bits: int, nonce: int) -> Block:
    alice = owner_of(public_key(demo_private_key("alice")))
    coinbase = coinbase_tx(0, [TxOut(GENESIS_REWARD, alice)])
    header = Header(1, bytes(32), merkle_root([coinbase.txid]), GENESIS_TIME, bits, nonce)
    return Block(header, (coinbase,))


REGTEST = Network(name="regtest", magic=b"TOYR", pow_limit_bits=0x207FFFFF,
                  retarget_interval=None, target_spacing=None, halving_interval=150,
                  coinbase_maturity=10, default_port=18444, genesis_nonce=0)
DEVNET = Network(name="devnet", magic=b"TOYD", pow_limit_bits=0x1F00FFFF,
                 retarget_interval=20, target_spacing=5, halving_interval=150,
                 coinbase_maturity=10, default_port=8331, genesis_nonce=61499)

NETWORKS = {net.name: net for net in (REGTEST, DEVNET)}
