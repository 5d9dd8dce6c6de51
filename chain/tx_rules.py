"""The rules a transaction must pass, as pure functions, named by what they need.

Both the mempool and the block path call these same functions, in this
order (Bitcoin Core's), so they cannot drift apart:

1. ``check_transaction(tx)``: needs nothing but the tx. Version, at least
   one output, size, every amount in [0, MAX_MONEY] and their running sum
   too (CVE-2010-5139: two huge outputs once summed past 2^63 and printed
   184 billion BTC), and no coin listed twice (CVE-2018-17144).
2. ``check_final(tx, height)``: needs the height that would include it.
3. ``find_spent_coins(tx, view)``: needs the coins; every input must name a
   coin that exists and is unspent. This is what stops a double spend.
4. ``check_tx_inputs(tx, spent, height, net)``: maturity of coinbase coins,
   input values in range, and **inputs >= outputs: the overspend rule**.
   Returns the fee.
5. ``check_input_authorization(tx, i, coin, magic)`` for each input: a valid
   pubkey, whose hash is the coin's owner, and a valid low-S signature by it
   over the sighash. This is what stops theft and tampering.

Each raises ``RuleError`` with the code of PROTOCOL.md section 5 and a
sentence with the numbers.
"""

from .amounts import MAX_MONEY, format_toy, money_range
from .coins import Coin, CoinView
from .errors import RuleError
from .keys import owner_of, parse_pubkey, verify_with
from .params import MAX_BLOCK_SIZE, Network
from .sigcache import SignatureCache
from .address import encode_address
from .tx import Tx


def check_transaction(tx: Tx) -> None:
    """Context-free checks (Core's CheckTransaction)."""
    if tx.version != 1:
        raise RuleError("bad-txns-version", f"version {tx.version} is not 1")
    if not tx.outputs:
        raise RuleError("bad-txns-vout-empty", "the transaction has no outputs")
    if tx.size > MAX_BLOCK_SIZE:
        raise RuleError("bad-txns-oversize",
                        f"size {tx.size} bytes > block limit {MAX_BLOCK_SIZE} bytes")
    total = 0
    for index, out in enumerate(tx.outputs):
        if out.amount < 0:
            raise RuleError("bad-txns-vout-negative",
                            f"output {index} amount {format_toy(out.amount)} < 0")
        if out.amount > MAX_MONEY:
            raise RuleError("bad-txns-vout-toolarge",
                            f"output {index} amount {format_toy(out.amount)} > "
                            f"MAX_MONEY {format_toy(MAX_MONEY)}")
        total += out.amount
        if total > MAX_MONEY:
            raise RuleError("bad-txns-txouttotal-toolarge",
                            f"outputs 0..{index} sum to {format_toy(total)} > "
                            f"MAX_MONEY {format_toy(MAX_MONEY)}")
    seen = set()
    for index, txin in enumerate(tx.inputs):
        outpoint = txin.outpoint
        if outpoint in seen:
            raise RuleError("bad-txns-inputs-duplicate",
                            f"input {index} spends {outpoint} a second time")
        seen.add(outpoint)


def check_not_coinbase(tx: Tx) -> None:
    """Mempool only: a coinbase exists only as the first tx of a block."""
    if tx.is_coinbase:
        raise RuleError("coinbase", "a transaction with no inputs (a coinbase) "
                                    "is only valid as the first transaction of a block")


def check_final(tx: Tx, height: int) -> None:
    """``locktime`` is the lowest height that may include the tx (0 = any)."""
    if tx.locktime > height:
        raise RuleError("bad-txns-nonfinal",
                        f"locktime {tx.locktime} > height {height} of the block that would include it")


def find_spent_coins(tx: Tx, view: CoinView) -> list[Coin]:
    """The coin each input spends; ``bad-txns-inputs-missingorspent`` if any
    does not exist or was already spent."""
    spent = []
    for index, txin in enumerate(tx.inputs):
        coin = view.get_coin(txin.outpoint)
        if coin is None:
            raise RuleError("bad-txns-inputs-missingorspent",
                            f"input {index} spends {txin.outpoint}, which does not exist "
                            f"or is already spent")
        spent.append(coin)
    return spent


def check_tx_inputs(tx: Tx, spent: list[Coin], height: int, net: Network) -> int:
    """Maturity, value ranges and the overspend rule (Core's CheckTxInputs).
    ``height`` is that of the block that would include the tx. Returns the fee."""
    total_in = 0
    for index, coin in enumerate(spent):
        if coin.coinbase and height - coin.height < net.coinbase_maturity:
            raise RuleError("bad-txns-premature-spend-of-coinbase",
                            f"input {index} spends a coinbase output from height {coin.height} "
                            f"at height {height}: {height - coin.height} confirmations < "
                            f"maturity {net.coinbase_maturity}")
        total_in += coin.amount
        if not money_range(coin.amount) or not money_range(total_in):
            raise RuleError("bad-txns-inputvalues-outofrange",
                            f"input {index} value {format_toy(coin.amount)}, running sum "
                            f"{format_toy(total_in)}, outside [0, {format_toy(MAX_MONEY)}]")
    total_out = sum(out.amount for out in tx.outputs)
    if total_in < total_out:
        raise RuleError("bad-txns-in-belowout",
                        f"inputs {format_toy(total_in)} < outputs {format_toy(total_out)}")
    return total_in - total_out


def check_input_authorization(tx: Tx, index: int, coin: Coin, magic: bytes,
                              cache: SignatureCache | None = None) -> None:
    """Input ``index`` proves the right to spend ``coin``. With a ``cache``,
    a check that already passed for this exact tx, input, coin and network
    is not repeated (see chain/sigcache.py)."""
    key = cache.key(tx, index, coin, magic) if cache is not None else None
    if key is not None and key in cache:
        return
    txin = tx.inputs[index]
    pubkey = parse_pubkey(txin.pubkey)
    if pubkey is None:
        raise RuleError("bad-txns-bad-pubkey",
                        f"input {index} pubkey {txin.pubkey.hex()} is not a valid compressed point")
    if owner_of(txin.pubkey) != coin.owner:
        raise RuleError("bad-txns-wrong-owner",
                        f"input {index} pubkey belongs to {encode_address(owner_of(txin.pubkey))}, "
                        f"but the coin {txin.outpoint} belongs to {encode_address(coin.owner)}")
    if not verify_with(pubkey, txin.signature, tx.sighash(index, coin.txout, magic)):
        raise RuleError("bad-txns-bad-signature",
                        f"input {index} signature does not verify for the owner of "
                        f"{txin.outpoint} (wrong key, altered tx, other network, or high S)")
    if key is not None:
        cache.add(key)


def check_authorizations(tx: Tx, spent: list[Coin], magic: bytes,
                         cache: SignatureCache | None = None) -> None:
    """Every input's pubkey, owner and signature, in input order."""
    for index, coin in enumerate(spent):
        check_input_authorization(tx, index, coin, magic, cache)

