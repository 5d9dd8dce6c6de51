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
sentence with the numbers. Each also takes an optional ``trace``
(``chain/trace.py``): given one, it records every comparison it makes, the
rule in words (the constants below) and the values compared, which is how
``explaintransaction`` shows the whole check. Without one it records nothing.
"""

from .amounts import MAX_MONEY, format_toy, money_range
from .coins import Coin, CoinView
from .errors import RuleError
from .keys import owner_of, parse_pubkey, verify_with
from .params import MAX_BLOCK_SIZE, Network
from .sigcache import SignatureCache
from .address import encode_address
from .trace import Address, Trace, rejection
from .tx import Tx

# The rules in words, as a trace shows them (one per kind of comparison).
VERSION = "version is 1"
HAS_OUTPUTS = "at least one output"
SIZE = "size at most the block size limit"
OUTPUT_AMOUNT = ("each output amount in [0, MAX_MONEY], and the running sum of outputs too "
                 "(CVE-2010-5139)")
NO_DUPLICATE_INPUT = "no coin spent twice in one transaction (CVE-2018-17144)"
NOT_COINBASE = "not a coinbase: a transaction with no inputs exists only first in a block"
FINAL = "locktime at most the height of the block that would include it"
COIN_EXISTS = "the coin an input spends exists and is unspent: the double-spend rule"
MATURE = "a block reward (coinbase) coin is spent only once it has matured"
INPUT_RANGE = "each input value in [0, MAX_MONEY], and the running sum of inputs too"
OVERSPEND = "inputs >= outputs: the overspend rule"
PUBKEY = "the input's public key is a valid compressed curve point"
OWNER = "the public key hashes to the owner of the coin it spends"
SIGNATURE = "the signature verifies for that key over the sighash (and has a low S)"


def check_transaction(tx: Tx, trace: Trace | None = None) -> None:
    """Context-free checks (Core's CheckTransaction)."""
    if tx.version != 1:
        raise rejection(trace, VERSION, check_transaction, {"version": tx.version},
                        "bad-txns-version", f"version {tx.version} is not 1")
    if trace is not None:
        trace.passed(VERSION, check_transaction, {"version": tx.version})
    if not tx.outputs:
        raise rejection(trace, HAS_OUTPUTS, check_transaction, {"outputs": 0},
                        "bad-txns-vout-empty", "the transaction has no outputs")
    if trace is not None:
        trace.passed(HAS_OUTPUTS, check_transaction, {"outputs": len(tx.outputs)})
    if tx.size > MAX_BLOCK_SIZE:
        raise rejection(trace, SIZE, check_transaction, {"size": tx.size, "limit": MAX_BLOCK_SIZE},
                        "bad-txns-oversize",
                        f"size {tx.size} bytes > block limit {MAX_BLOCK_SIZE} bytes")
    if trace is not None:
        trace.passed(SIZE, check_transaction, {"size": tx.size, "limit": MAX_BLOCK_SIZE})
    total = 0
    for index, out in enumerate(tx.outputs):
        if out.amount < 0:
            raise rejection(trace, OUTPUT_AMOUNT, check_transaction,
                            {"output": index, "amount": out.amount},
                            "bad-txns-vout-negative",
                            f"output {index} amount {format_toy(out.amount)} < 0")
        if out.amount > MAX_MONEY:
            raise rejection(trace, OUTPUT_AMOUNT, check_transaction,
                            {"output": index, "amount": out.amount, "max_money": MAX_MONEY},
                            "bad-txns-vout-toolarge",
                            f"output {index} amount {format_toy(out.amount)} > "
                            f"MAX_MONEY {format_toy(MAX_MONEY)}")
        total += out.amount
        if total > MAX_MONEY:
            raise rejection(trace, OUTPUT_AMOUNT, check_transaction,
                            {"output": index, "amount": out.amount, "running_sum": total,
                             "max_money": MAX_MONEY},
                            "bad-txns-txouttotal-toolarge",
                            f"outputs 0..{index} sum to {format_toy(total)} > "
                            f"MAX_MONEY {format_toy(MAX_MONEY)}")
        if trace is not None:
            trace.passed(OUTPUT_AMOUNT, check_transaction,
                         {"output": index, "amount": out.amount, "to": Address(out.owner),
                          "running_sum": total, "max_money": MAX_MONEY})
    seen = set()
    for index, txin in enumerate(tx.inputs):
        outpoint = txin.outpoint
        if outpoint in seen:
            raise rejection(trace, NO_DUPLICATE_INPUT, check_transaction,
                            {"input": index, "coin": outpoint},
                            "bad-txns-inputs-duplicate",
                            f"input {index} spends {outpoint} a second time")
        seen.add(outpoint)
    if trace is not None:
        trace.passed(NO_DUPLICATE_INPUT, check_transaction,
                     {"inputs": len(tx.inputs), "distinct_coins": len(seen)})


def check_not_coinbase(tx: Tx, trace: Trace | None = None) -> None:
    """Mempool only: a coinbase exists only as the first tx of a block."""
    if tx.is_coinbase:
        raise rejection(trace, NOT_COINBASE, check_not_coinbase, {"inputs": 0}, "coinbase",
                        "a transaction with no inputs (a coinbase) is only valid as the first "
                        "transaction of a block")
    if trace is not None:
        trace.passed(NOT_COINBASE, check_not_coinbase, {"inputs": len(tx.inputs)})


def check_final(tx: Tx, height: int, trace: Trace | None = None) -> None:
    """``locktime`` is the lowest height that may include the tx (0 = any)."""
    if tx.locktime > height:
        raise rejection(trace, FINAL, check_final, {"locktime": tx.locktime, "height": height},
                        "bad-txns-nonfinal",
                        f"locktime {tx.locktime} > height {height} of the block that would include it")
    if trace is not None:
        trace.passed(FINAL, check_final, {"locktime": tx.locktime, "height": height})


def find_spent_coins(tx: Tx, view: CoinView, trace: Trace | None = None) -> list[Coin]:
    """The coin each input spends; ``bad-txns-inputs-missingorspent`` if any
    does not exist or was already spent."""
    spent = []
    for index, txin in enumerate(tx.inputs):
        coin = view.get_coin(txin.outpoint)
        if coin is None:
            raise rejection(trace, COIN_EXISTS, find_spent_coins,
                            {"input": index, "coin": txin.outpoint, "found": False},
                            "bad-txns-inputs-missingorspent",
                            f"input {index} spends {txin.outpoint}, which does not exist "
                            f"or is already spent")
        if trace is not None:
            trace.passed(COIN_EXISTS, find_spent_coins,
                         {"input": index, "coin": txin.outpoint, "found": True,
                          "amount": coin.amount, "owner": Address(coin.owner),
                          "height": coin.height, "coinbase": coin.coinbase})
        spent.append(coin)
    return spent


def _maturity(index: int, coin: Coin, height: int, net: Network) -> dict:
    """What the maturity rule compares for input ``index`` (a trace's values)."""
    return {"input": index, "coin_height": coin.height, "height": height,
            "confirmations": height - coin.height, "maturity": net.coinbase_maturity}


def check_tx_inputs(tx: Tx, spent: list[Coin], height: int, net: Network,
                    trace: Trace | None = None) -> int:
    """Maturity, value ranges and the overspend rule (Core's CheckTxInputs).
    ``height`` is that of the block that would include the tx. Returns the fee."""
    total_in = 0
    for index, coin in enumerate(spent):
        if coin.coinbase:
            if height - coin.height < net.coinbase_maturity:
                raise rejection(trace, MATURE, check_tx_inputs, _maturity(index, coin, height, net),
                                "bad-txns-premature-spend-of-coinbase",
                                f"input {index} spends a coinbase output from height {coin.height} "
                                f"at height {height}: {height - coin.height} confirmations < "
                                f"maturity {net.coinbase_maturity}")
            if trace is not None:
                trace.passed(MATURE, check_tx_inputs, _maturity(index, coin, height, net))
        total_in += coin.amount
        if not money_range(coin.amount) or not money_range(total_in):
            raise rejection(trace, INPUT_RANGE, check_tx_inputs,
                            {"input": index, "amount": coin.amount, "running_sum": total_in,
                             "max_money": MAX_MONEY},
                            "bad-txns-inputvalues-outofrange",
                            f"input {index} value {format_toy(coin.amount)}, running sum "
                            f"{format_toy(total_in)}, outside [0, {format_toy(MAX_MONEY)}]")
        if trace is not None:
            trace.passed(INPUT_RANGE, check_tx_inputs,
                         {"input": index, "amount": coin.amount, "running_sum": total_in,
                          "max_money": MAX_MONEY})
    total_out = sum(out.amount for out in tx.outputs)
    if total_in < total_out:
        raise rejection(trace, OVERSPEND, check_tx_inputs,
                        {"total_in": total_in, "total_out": total_out},
                        "bad-txns-in-belowout",
                        f"inputs {format_toy(total_in)} < outputs {format_toy(total_out)}")
    if trace is not None:
        trace.passed(OVERSPEND, check_tx_inputs,
                     {"total_in": total_in, "total_out": total_out, "fee": total_in - total_out})
    return total_in - total_out


def check_input_authorization(tx: Tx, index: int, coin: Coin, magic: bytes,
                              cache: SignatureCache | None = None,
                              trace: Trace | None = None) -> None:
    """Input ``index`` proves the right to spend ``coin``. With a ``cache``,
    a check that already passed for this exact tx, input, coin and network
    is not repeated (see chain/sigcache.py); a caller that traces passes none."""
    key = cache.key(tx, index, coin, magic) if cache is not None else None
    if key is not None and key in cache:
        return
    txin = tx.inputs[index]
    pubkey = parse_pubkey(txin.pubkey)
    if pubkey is None:
        raise rejection(trace, PUBKEY, check_input_authorization,
                        {"input": index, "pubkey": txin.pubkey}, "bad-txns-bad-pubkey",
                        f"input {index} pubkey {txin.pubkey.hex()} is not a valid compressed point")
    if trace is not None:
        trace.passed(PUBKEY, check_input_authorization, {"input": index, "pubkey": txin.pubkey})
    key_owner = owner_of(txin.pubkey)
    if key_owner != coin.owner:
        raise rejection(trace, OWNER, check_input_authorization,
                        {"input": index, "key_owner": Address(key_owner),
                         "coin_owner": Address(coin.owner)}, "bad-txns-wrong-owner",
                        f"input {index} pubkey belongs to {encode_address(key_owner)}, "
                        f"but the coin {txin.outpoint} belongs to {encode_address(coin.owner)}")
    if trace is not None:
        trace.passed(OWNER, check_input_authorization,
                     {"input": index, "key_owner": Address(key_owner),
                      "coin_owner": Address(coin.owner)})
    sighash = tx.sighash(index, coin.txout, magic)
    if not verify_with(pubkey, txin.signature, sighash):
        raise rejection(trace, SIGNATURE, check_input_authorization,
                        {"input": index, "sighash": sighash, "signature": txin.signature},
                        "bad-txns-bad-signature",
                        f"input {index} signature does not verify for the owner of "
                        f"{txin.outpoint} (wrong key, altered tx, other network, or high S)")
    if trace is not None:
        trace.passed(SIGNATURE, check_input_authorization,
                     {"input": index, "sighash": sighash, "signature": txin.signature})
    if key is not None:
        cache.add(key)


def check_authorizations(tx: Tx, spent: list[Coin], magic: bytes,
                         cache: SignatureCache | None = None, trace: Trace | None = None) -> None:
    """Every input's pubkey, owner and signature, in input order."""
    for index, coin in enumerate(spent):
        check_input_authorization(tx, index, coin, magic, cache, trace)
