"""The rules a block must pass, as pure functions, named by what they need.

In the order they run (PROTOCOL.md section 5, Bitcoin Core's order):

1. ``check_proof_of_work(header, net)``: valid bits within the network's
   limit, and a hash that meets them. It runs first and apart from the rest:
   a header that fails it is not remembered (it cost its sender nothing).
2. ``check_header(header)``: the rest of the header alone: version 1. The
   headers path runs it after the proof of work; the block path through
   ``check_block(block)``, which then checks the body alone: merkle root (a
   mismatch means the block was altered in transit: not the hash's fault),
   no repeated txid (CVE-2012-2459 mutation), size, exactly one coinbase and
   it first, and ``check_transaction`` for every tx. Each check runs once
   on each path.
3. ``check_header_context(header, required_bits, parent_mtp, now)``: needs
   the parent. The required difficulty, time after the median of the last
   11 blocks, and not more than 2 hours in the future.
4. ``check_block_context(block, height)``: every tx final at this height,
   the coinbase's locktime equal to the height (unique coinbase txids).
5. ``connect_block(block, height, view, net)``: needs the coins, read for
   the whole block at once (``CoinCache.prefetch``). Tx by tx: no txid that
   still has unspent outputs (BIP30), the same input rules as the mempool
   (``tx_rules``), fees in range; then the coinbase may claim at most
   subsidy + fees. Signature checks, the expensive part, go to a verifier
   (chain/sigcheck.py) as they are met: in the calling thread at the end, or
   in worker processes meanwhile with a ``ParallelVerifier``, skipping those
   a ``SignatureCache`` saw pass in the mempool. A failure of another rule
   is raised at once (after the checks before it); otherwise the caller
   gets a function that waits for the checks and raises the first failure,
   to call after its own work (the SQLite write, before it commits). Either
   way the error reported is the first one in block order, exactly as if
   every check had run one by one.
"""

from collections.abc import Callable

from .amounts import MAX_MONEY, format_toy
from .block import Block, Header, merkle_root
from .coins import Coin, CoinCache
from .errors import RuleError
from .params import MAX_BLOCK_SIZE, MAX_FUTURE_SECONDS, Network
from .pow import hash_meets_target, retarget, target_from_bits
from .sigcheck import SerialVerifier
from .tx import OutPoint, Tx
from .tx_rules import check_final, check_transaction, check_tx_inputs, find_spent_coins

# Where in a block a failure happened, so the first one in block order wins:
# (tx position, stage, input index). Stages within one transaction:
BIP30, INPUTS, AUTHORIZATION, FEES = range(4)


def in_tx(pos: int, tx: Tx, error: RuleError) -> RuleError:
    """The same rejection, its sentence prefixed with which tx of the block."""
    return RuleError(error.code, f"tx {pos} ({tx.txid.hex()[:16]}): {error.message}")


def check_proof_of_work(header: Header, net: Network) -> None:
    """Valid bits within the network's limit, and a hash that meets them."""
    target = target_from_bits(header.bits, net.pow_limit)
    if not hash_meets_target(header.hash, target):
        raise RuleError("high-hash", f"hash {header.hash.hex()} is above the target of "
                                     f"bits {header.bits:08x}")


def check_header(header: Header) -> None:
    """Context-free header checks after the proof of work: the version."""
    if header.version != 1:
        raise RuleError("bad-version", f"header version {header.version} is not 1")


def check_block(block: Block) -> None:
    """Context-free block checks after the proof of work (Core's CheckBlock)."""
    check_header(block.header)
    txids = [tx.txid for tx in block.txs]
    root = merkle_root(txids)
    if root != block.header.merkle_root:
        raise RuleError("bad-txnmrklroot", f"merkle root of the txs is {root.hex()}, "
                                           f"header says {block.header.merkle_root.hex()}")
    if len(set(txids)) != len(txids):
        raise RuleError("bad-txns-duplicate", "the same txid appears twice in the block "
                                              "(a mutated block, CVE-2012-2459)")
    if not block.txs or block.size > MAX_BLOCK_SIZE:
        raise RuleError("bad-blk-length", f"{len(block.txs)} txs, {block.size} bytes: a block "
                                          f"needs 1+ txs and at most {MAX_BLOCK_SIZE} bytes")
    if not block.txs[0].is_coinbase:
        raise RuleError("bad-cb-missing", "the first transaction is not a coinbase")
    for pos, tx in enumerate(block.txs[1:], start=1):
        if tx.is_coinbase:
            raise RuleError("bad-cb-multiple", f"tx {pos} is a second coinbase")
    for pos, tx in enumerate(block.txs):
        try:
            check_transaction(tx)
        except RuleError as error:
            raise in_tx(pos, tx, error) from None


def required_bits(net: Network, height: int, parent_bits: int, parent_time: int,
                  interval_start_time: int | None) -> int:
    """The bits a block at ``height`` must carry. ``interval_start_time`` is the
    time of the block at ``height - retarget_interval`` (used at retargets only)."""
    interval = net.retarget_interval
    if interval is None:
        return net.pow_limit_bits
    if height % interval != 0:
        return parent_bits
    return retarget(parent_bits, parent_time - interval_start_time,
                    interval * net.target_spacing, net.pow_limit)


def check_header_context(header: Header, required: int, parent_mtp: int, now: int) -> None:
    """Checks that need the parent: required bits and time bounds."""
    if header.bits != required:
        raise RuleError("bad-diffbits", f"bits {header.bits:08x}, but this height requires "
                                        f"{required:08x}")
    if header.time <= parent_mtp:
        raise RuleError("time-too-old", f"time {header.time} <= median time past {parent_mtp}")
    if header.time > now + MAX_FUTURE_SECONDS:
        raise RuleError("time-too-new", f"time {header.time} > node clock {now} + "
                                        f"{MAX_FUTURE_SECONDS} s")


def check_block_context(block: Block, height: int) -> None:
    """Every tx final at ``height``; coinbase locktime equal to ``height``."""
    for pos, tx in enumerate(block.txs[1:], start=1):
        try:
            check_final(tx, height)
        except RuleError as error:
            raise in_tx(pos, tx, error) from None
    coinbase = block.txs[0]
    if coinbase.locktime != height:
        raise RuleError("bad-cb-height", f"coinbase locktime {coinbase.locktime} != "
                                         f"block height {height}")


def connect_block(block: Block, height: int, view: CoinCache, net: Network,
                  verifier=SerialVerifier()
                  ) -> tuple[list[tuple[OutPoint, Coin]], int, Callable[[], None]]:
    """Apply ``block`` to ``view`` if every input rule holds (Core's ConnectBlock).
    Returns the spent coins (the undo data), the total fees, and the function
    that raises the first failing signature check, if any (see the module
    docstring); on a failure the view is left half-applied and must be discarded."""
    fees = 0
    spent_log: list[tuple[OutPoint, Coin]] = []
    failure: tuple[tuple, RuleError] | None = None
    view.prefetch([txin.outpoint for tx in block.txs for txin in tx.inputs],
                  [tx.txid for tx in block.txs])
    checks = verifier.start(net.magic, sum(len(tx.inputs) for tx in block.txs))
    for pos, tx in enumerate(block.txs):
        stage = BIP30
        try:
            if view.any_unspent(tx.txid, len(tx.outputs)):
                raise RuleError("bad-txns-BIP30", f"txid {tx.txid.hex()} already has unspent outputs")
            if not tx.is_coinbase:
                stage = INPUTS
                coins = find_spent_coins(tx, view)
                fee = check_tx_inputs(tx, coins, height, net)
                for index, (txin, coin) in enumerate(zip(tx.inputs, coins)):
                    checks.add((pos, AUTHORIZATION, index), tx, index, coin)
                    outpoint = txin.outpoint
                    view.spend(outpoint)
                    spent_log.append((outpoint, coin))
                stage = FEES
                fees += fee
                if fees > MAX_MONEY:
                    raise RuleError("bad-txns-accumulated-fee-outofrange",
                                    f"fees so far {format_toy(fees)} > MAX_MONEY")
            view.add_outputs(tx, height)
        except RuleError as error:
            failure = ((pos, stage, 0), in_tx(pos, tx, error))
            break
    else:
        claimed = sum(out.amount for out in block.txs[0].outputs)
        allowed = net.subsidy(height) + fees
        if claimed > allowed:
            failure = ((len(block.txs), 0, 0), RuleError(
                "bad-cb-amount", f"coinbase claims {format_toy(claimed)} > subsidy "
                                 f"{format_toy(net.subsidy(height))} + fees {format_toy(fees)}"))

    def settle() -> None:
        """Raise the first failure in block order: every check met comes before
        ``failure`` (the loop stops there), so a failing one wins."""
        signature_failure = checks.verdict()
        if signature_failure is not None:
            key, tx, error = signature_failure
            raise in_tx(key[0], tx, error)
        if failure is not None:
            raise failure[1]

    if failure is not None:
        settle()
    return spent_log, fees, settle
