"""Building a payment: choose coins, pay the fee, send change back, sign.

Coin selection is largest-first over the wallet's spendable coins: mature,
and not already spent by a pending transaction (the node's ``listunspent``
leaves those out, so the wallet never double-spends its own pending coins).
The fee is ``fee_rate x size`` with the size known exactly in advance (an
input is 133 bytes, an output 28). Change goes to a fresh address of the
wallet; change too small to be worth its own output is left to the fee.

An overspend (``build_overspend``) is what a wallet must never send and a
node must always refuse: it spends the wallet's coins (its largest
``MAX_OVERSPEND_INPUTS`` at most) and pays the whole amount anyway, with no
change and no fee. The devnet's try-it panel and ``toychain wallet send
--overspend-anyway`` sign one so a student can watch a node refuse it.
"""

from dataclasses import dataclass

from chain.amounts import format_toy
from chain.coins import Coin
from chain.encoding import varint
from chain.mining import sign_tx
from chain.tx import INPUT_SIZE, OUTPUT_SIZE, OutPoint, Tx, TxIn, TxOut

from .keystore import Keystore


MAX_OVERSPEND_INPUTS = 1000  # an overspend spends the largest coins, at most this many


class InsufficientFunds(Exception):
    pass


@dataclass
class Spendable:
    outpoint: OutPoint
    coin: Coin
    confirmations: int


@dataclass
class Payment:
    tx: Tx
    amount: int
    fee: int
    change: int
    inputs: list[Spendable]


def tx_size(n_in: int, n_out: int) -> int:
    return 4 + len(varint(n_in)) + n_in * INPUT_SIZE + len(varint(n_out)) + n_out * OUTPUT_SIZE + 4


def build_payment(keystore: Keystore, spendable: list[Spendable], to_owner: bytes, amount: int,
                  fee_rate: int, change_owner: bytes, magic: bytes, immature: int = 0) -> Payment:
    """A signed tx paying ``amount`` to ``to_owner``; InsufficientFunds if the
    coins (largest first) cannot cover amount + fee."""
    coins = sorted(spendable, key=lambda s: (-s.coin.amount, -s.confirmations))
    chosen, total = [], 0
    for item in coins:
        chosen.append(item)
        total += item.coin.amount
        fee = fee_rate * tx_size(len(chosen), 2)
        if total >= amount + fee:
            break
    else:
        fee = fee_rate * tx_size(max(len(chosen), 1), 2)
        have = sum(s.coin.amount for s in spendable)
        extra = f" (and {format_toy(immature)} not yet mature)" if immature else ""
        raise InsufficientFunds(
            f"insufficient funds: you have {format_toy(have)} spendable{extra}, you need "
            f"{format_toy(amount)} + fee {format_toy(fee)} = {format_toy(amount + fee)}")
    change = total - amount - fee
    outputs = [TxOut(amount, to_owner)]
    if change >= fee_rate * OUTPUT_SIZE and change > 0:
        outputs.append(TxOut(change, change_owner))
    else:  # not worth an output: it goes to the miner
        fee, change = fee + change, 0
    tx = _sign(keystore, chosen, outputs, magic)
    return Payment(tx, amount, fee, change, chosen)


def build_overspend(keystore: Keystore, spendable: list[Spendable], to_owner: bytes, amount: int,
                    magic: bytes) -> tuple[Tx, list[Spendable]]:
    """(a signed tx, the coins it spends): the largest coins
    (``MAX_OVERSPEND_INPUTS`` at most) paying ``amount`` to ``to_owner``
    whether or not they cover it, with no change and no fee."""
    chosen = sorted(spendable, key=lambda s: -s.coin.amount)[:MAX_OVERSPEND_INPUTS]
    return _sign(keystore, chosen, [TxOut(amount, to_owner)], magic), chosen


def _sign(keystore: Keystore, coins: list[Spendable], outputs: list[TxOut], magic: bytes) -> Tx:
    keys = keystore.by_owner()
    signers = [keys[item.coin.owner] for item in coins]
    unsigned = Tx(1, tuple(TxIn(s.outpoint.txid, s.outpoint.index, k.pubkey, bytes(64))
                           for s, k in zip(coins, signers)), tuple(outputs), 0)
    return sign_tx(unsigned, [k.secret for k in signers], [s.coin.txout for s in coins], magic)
