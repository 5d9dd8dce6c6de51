"""Building transactions by hand, the way a wallet would, and the ways an
attacker might: the demos need payments that a real wallet refuses to make.

A coin is one unspent output, as ``listunspent`` reports it. ``sign`` signs
input i with the key given for it, over the sighash of PROTOCOL.md section 3
(the whole tx with signatures blanked, the network's magic, i, and the coin
spent), exactly as ``chain.mining.sign_tx`` does for the node's own tests.
``pay`` is an ordinary payment with change; everything else (overspends,
wrong keys, duplicated inputs, edited amounts) is built from ``unsigned``,
``sign`` and ``Tx``'s fields directly, so the code shows what is forged.
"""

from dataclasses import dataclass

from chain.address import decode_address
from chain.mining import sign_tx
from chain.params import Network
from chain.tx import OUTPUT_SIZE, OutPoint, Tx, TxIn, TxOut

from .actors import Actor

# Units per byte: above the node's default minimum relay fee (1 unit/byte).
FEE_RATE = 10


@dataclass(frozen=True)
class Coin:
    """One unspent output: where it is, how much, whose."""
    txid: str
    index: int
    amount: int
    owner: bytes

    @property
    def outpoint(self) -> OutPoint:
        return OutPoint(bytes.fromhex(self.txid), self.index)

    @property
    def txout(self) -> TxOut:
        return TxOut(self.amount, self.owner)

    @classmethod
    def from_row(cls, row: dict) -> "Coin":
        return cls(row["txid"], row["index"], row["amount"], decode_address(row["address"]))


def tx_size(n_in: int, n_out: int) -> int:
    """Exact size in bytes (varints of counts under 253 take one byte)."""
    return 4 + 1 + n_in * (32 + 4 + 33 + 64) + 1 + n_out * OUTPUT_SIZE + 4


def fee_for(n_in: int, n_out: int) -> int:
    return FEE_RATE * tx_size(n_in, n_out)


def unsigned(coins: list[Coin], pubkeys: list[bytes], outputs: list[tuple[bytes, int]]) -> Tx:
    """A tx spending ``coins`` (input i shows ``pubkeys[i]``), paying ``outputs``
    [(owner, units)], with blank signatures."""
    inputs = tuple(TxIn(c.outpoint.txid, c.index, pk, bytes(64)) for c, pk in zip(coins, pubkeys))
    return Tx(1, inputs, tuple(TxOut(amount, owner) for owner, amount in outputs), 0)


def sign(tx: Tx, signers: list[Actor], coins: list[Coin], net: Network) -> Tx:
    """Input i signed with ``signers[i]``'s key for ``coins[i]``."""
    return sign_tx(tx, [s.secret for s in signers], [c.txout for c in coins], net.magic)


def spend(coins: list[Coin], signer: Actor, outputs: list[tuple[bytes, int]], net: Network) -> Tx:
    """``signer`` spends ``coins`` (its own, or so it claims) to ``outputs``."""
    tx = unsigned(coins, [signer.pubkey] * len(coins), outputs)
    return sign(tx, [signer] * len(coins), coins, net)


def pay(payer: Actor, coins: list[Coin], payments: list[tuple[bytes, int]], net: Network,
        change_to: bytes | None = None) -> Tx:
    """An honest payment: ``payments`` [(owner, units)] from ``coins``, the fee
    at FEE_RATE, the rest back to the payer (or ``change_to``). Raises
    ValueError if the coins do not cover it: a wallet never signs an overspend."""
    total_in = sum(c.amount for c in coins)
    total_out = sum(amount for _, amount in payments)
    fee = fee_for(len(coins), len(payments) + 1)
    change = total_in - total_out - fee
    if change < 0:
        raise ValueError(f"{payer} has {total_in} units, needs {total_out} + fee {fee}")
    outputs = list(payments)
    if change > FEE_RATE * OUTPUT_SIZE:
        outputs.append((change_to or payer.owner, change))
    return spend(coins, payer, outputs, net)


def with_outputs(tx: Tx, outputs: list[tuple[bytes, int]]) -> Tx:
    """The same inputs and signatures, different outputs: what a tampering relay does."""
    return Tx(tx.version, tx.inputs, tuple(TxOut(a, o) for o, a in outputs), tx.locktime)
