"""Property tests of the chain state over random chains (hypothesis stateful).

A random program drives one node on a file database: it mines blocks with
random valid spends among the demo accounts, offers blocks that carry one
invalid transaction (each must be refused with its code and change nothing),
offers a mutated copy of a valid block before the genuine one, builds longer competing branches from earlier heights (sometimes with an
invalid block in them, so the chain must stay or come back), connects a block
and reorganises it away, closes and reopens the database, and crashes in the
middle of writing a block.

The coin cache (chain/utxocache.py) is kept small here, so that it evicts
all the time, and every answer it gives is compared with SQLite's: the
inputs and outputs of blocks about to connect or be reorganised away are
looked up before (remembered misses, coins about to be spent) and after,
and so are those of the latest blocks built after every step.

After every step the invariants hold: the UTXO set is the one rebuilt from
scratch by replaying the active chain (no coin spent twice, none before it
exists), the coin count and money supply kept in the database agree with it,
the supply is what the coinbases created minus the fees they left unclaimed,
no amount or balance is negative, and the tx index and address history
describe exactly the active chain.
"""

import os
import shutil
import tempfile

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chain.amounts import COIN
from chain.block import Block
from chain.chainstate import FAILED, ChainState
from chain.coins import Coin
from chain.params import REGTEST
from chain.storage import Store
from chain.tx import OutPoint, Tx, TxOut

from .helpers import NOW, FailingDB, Harness, InjectedFault, assert_coin_cache_is_the_disk, owner, spend

NAMES = ("alice", "bob", "carol", "dave")
NAME_OF = {owner(name): name for name in NAMES}
MATURITY = REGTEST.coinbase_maturity

INVALID_KINDS = {
    "overspend": "bad-txns-in-belowout",
    "double-spend-in-block": "bad-txns-inputs-missingorspent",
    "spend-already-spent": "bad-txns-inputs-missingorspent",
    "duplicate-input": "bad-txns-inputs-duplicate",
    "missing-coin": "bad-txns-inputs-missingorspent",
    "spend-later-output": "bad-txns-inputs-missingorspent",
    "wrong-signer": "bad-txns-wrong-owner",
    "tampered-after-signing": "bad-txns-bad-signature",
    "premature-coinbase": "bad-txns-premature-spend-of-coinbase",
    "coinbase-overclaim": "bad-cb-amount",
}

# A real file (WAL, reopened many times), in memory-backed storage when there is some.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

CONNECT_STATEMENTS = 7  # SQL statements Store.apply_block runs to connect a block
CACHE_ROOM = 48  # coins the chain's coin cache may hold here, so that it evicts


# -- an independent model: the chain's effect on coins, replayed from scratch ------------

def replay(blocks: list[Block]):
    """(coins, coinbase total, fee total, spent outpoints) of a chain given genesis
    first. Asserts that every outpoint is spent at most once, and only after the
    transaction creating it (earlier block, or earlier in the same block)."""
    coins: dict[OutPoint, Coin] = {}
    created: set[OutPoint] = set()
    spent: set[OutPoint] = set()
    coinbase_total = fees = 0
    for height, block in enumerate(blocks):
        for tx in block.txs:
            total_in = 0
            for txin in tx.inputs:
                outpoint = txin.outpoint
                assert outpoint in created, f"{outpoint} spent before it was created"
                assert outpoint not in spent, f"{outpoint} spent twice on the active chain"
                spent.add(outpoint)
                total_in += coins.pop(outpoint).amount
            total_out = 0
            for index, out in enumerate(tx.outputs):
                outpoint = OutPoint(tx.txid, index)
                created.add(outpoint)
                coins[outpoint] = Coin(out.amount, out.owner, height, tx.is_coinbase)
                total_out += out.amount
            if tx.is_coinbase:
                coinbase_total += total_out
            else:
                assert total_in >= total_out
                fees += total_in - total_out
    return coins, coinbase_total, fees, spent


def apply(coins: dict[OutPoint, Coin], block: Block, height: int) -> None:
    for tx in block.txs:
        for txin in tx.inputs:
            del coins[txin.outpoint]
        for index, out in enumerate(tx.outputs):
            coins[OutPoint(tx.txid, index)] = Coin(out.amount, out.owner, height, tx.is_coinbase)


def spendable(coins: dict[OutPoint, Coin], height: int) -> list[tuple[OutPoint, Coin]]:
    """Coins a block at ``height`` may spend, in a stable order."""
    return sorted(((op, c) for op, c in coins.items()
                   if not c.coinbase or height - c.height >= MATURITY),
                  key=lambda item: (item[0].txid, item[0].index))


def split(rnd, total: int, parts: int) -> list[int]:
    """``total`` (>= parts) as ``parts`` positive amounts."""
    cuts = sorted({rnd.randint(1, total - 1) for _ in range(parts - 1)}) if total > 1 else []
    bounds = [0] + cuts + [total]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def random_spends(rnd, coins: dict[OutPoint, Coin], height: int, max_txs: int):
    """Valid txs for a block at ``height`` (later ones may spend earlier ones'
    outputs) and their fees. Returns (txs, fees, coins still unused)."""
    available = dict(spendable(coins, height))
    txs, fees = [], 0
    for _ in range(rnd.randint(0, max_txs)):
        candidates = sorted((item for item in available.items() if item[1].amount > 1),
                            key=lambda item: (item[0].txid, item[0].index))
        if not candidates:
            break
        chosen = rnd.sample(candidates, rnd.randint(1, min(3, len(candidates))))
        for outpoint, _ in chosen:
            del available[outpoint]
        total = sum(coin.amount for _, coin in chosen)
        fee = rnd.choice([0, rnd.randint(0, min(total - 1, 100_000))])
        amounts = split(rnd, total - fee, rnd.randint(1, 3))
        outputs = [(rnd.choice(NAMES), amount) for amount in amounts]
        tx = spend(chosen, [NAME_OF[coin.owner] for _, coin in chosen], outputs)
        txs.append(tx)
        fees += fee
        for index, (who, amount) in enumerate(outputs):
            available[OutPoint(tx.txid, index)] = Coin(amount, owner(who), height, False)
    return txs, fees, available


class ChainMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="toychain-props-", dir=SCRATCH)
        self.path = os.path.join(self.dir, "chain.sqlite")
        self.h = Harness(store=Store(self.path))
        self.h.chain.coins.max_coins = CACHE_ROOM
        self.blocks: dict[bytes, Block] = {REGTEST.genesis.hash: REGTEST.genesis}
        self.bumps = 0
        for i in range(MATURITY + 1):  # every account gets coins; the first ones mature
            block = self.h.block(reward_to=NAMES[i % len(NAMES)])
            assert self.h.chain.process_block(block).status == "connected"
            self.blocks[block.hash] = block
        self.expected_tip = self.h.tip.hash

    def teardown(self):
        self.h.chain.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers --------------------------------------------------------------------------
    @property
    def chain(self) -> ChainState:
        return self.h.chain

    def active_blocks(self, upto: int | None = None) -> list[Block]:
        entries = self.chain.active if upto is None else self.chain.active[:upto + 1]
        return [self.blocks[e.hash] for e in entries]

    def new_block(self, rnd, txs, parent, fees=0, coinbase_outputs=None) -> Block:
        """A block on ``parent`` whose time is unique, so no two built blocks collide."""
        self.bumps += 1
        if coinbase_outputs is None:
            claim = REGTEST.subsidy(parent.height + 1) + fees
            claim -= rnd.choice([0, 0, rnd.randint(0, claim)])  # sometimes leave some
            coinbase_outputs = [TxOut(a, owner(rnd.choice(NAMES)))
                                for a in split(rnd, claim, rnd.randint(1, 2))] if claim > 1 \
                else [TxOut(claim, owner(rnd.choice(NAMES)))]
        block = self.h.block(txs, parent=parent, coinbase_outputs=coinbase_outputs,
                             time=self.h.next_time(parent) + self.bumps)
        self.blocks[block.hash] = block
        return block

    def snapshot(self) -> dict:
        store = self.chain.store
        return {"tip": self.chain.tip.hash, "coins": store.all_coins(),
                "stats": store.utxo_stats(), "active": store.active_hashes()}

    def look_up(self, blocks) -> None:
        """Every input and output of ``blocks``, through the coin cache, as SQLite says."""
        chain, store = self.chain, self.chain.store
        for block in blocks:
            for tx in block.txs:
                for outpoint in [txin.outpoint for txin in tx.inputs] + \
                        [OutPoint(tx.txid, i) for i in range(len(tx.outputs))]:
                    assert chain.get_coin(outpoint) == store.get_coin(outpoint), outpoint

    def reopen(self) -> None:
        self.chain.close()
        self.h.chain = ChainState(REGTEST, Store(self.path), clock=lambda: NOW)
        self.h.chain.coins.max_coins = CACHE_ROOM

    # -- rules ------------------------------------------------------------------------------
    @rule(rnd=st.randoms(use_true_random=False))
    def mine_valid_spends(self, rnd):
        tip = self.chain.tip
        coins, *_ = replay(self.active_blocks())
        txs, fees, _ = random_spends(rnd, coins, tip.height + 1, max_txs=4)
        block = self.new_block(rnd, txs, tip, fees)
        self.look_up([block])  # its coins missing (remembered), the coins it spends there
        out = self.chain.process_block(block)
        assert out.status == "connected", out
        assert out.connected == [block] and out.disconnected == []
        self.look_up([block])
        self.expected_tip = block.hash
        event(f"mined a block with {len(txs)} spends")
        for pos, tx in enumerate(block.txs):
            assert self.chain.find_tx(tx.txid) == (tx, self.chain.tip)

    @rule(rnd=st.randoms(use_true_random=False))
    def mutated_copy_first_then_genuine(self, rnd):
        tip = self.chain.tip
        coins, *_ = replay(self.active_blocks())
        txs, fees, _ = random_spends(rnd, coins, tip.height + 1, max_txs=3)
        genuine = self.new_block(rnd, txs, tip, fees)
        ways = ["duplicate-last"] + (["drop-one"] if len(genuine.txs) > 1 else []) \
            + (["swap"] if len(genuine.txs) > 2 else [])
        way = rnd.choice(ways)
        body = list(genuine.txs)
        if way == "duplicate-last":
            body.append(body[-1])
        elif way == "drop-one":
            del body[rnd.randint(1, len(body) - 1)]
        else:
            i, j = sorted(rnd.sample(range(1, len(body)), 2))
            body[i], body[j] = body[j], body[i]
        mutated = Block(genuine.header, tuple(body))
        before = self.snapshot()
        out = self.chain.process_block(mutated)
        event(f"mutated ({way}) then genuine")
        assert out.status == "invalid"
        assert out.error.code in ("bad-txnmrklroot", "bad-txns-duplicate")
        assert self.chain.invalid_reason(genuine.hash) is None
        assert self.snapshot() == before
        out = self.chain.process_block(genuine)
        assert out.status == "connected" and out.connected == [genuine]
        self.expected_tip = genuine.hash

    @rule(rnd=st.randoms(use_true_random=False), kind=st.sampled_from(sorted(INVALID_KINDS)))
    def refuse_invalid_tx(self, rnd, kind):
        tip = self.chain.tip
        height = tip.height + 1
        coins, _, _, spent = replay(self.active_blocks())
        before = self.snapshot()
        txs, fees, available = random_spends(rnd, coins, height, max_txs=2)  # valid prefix
        mature = [item for item in spendable(available, height) if item[1].amount > 1]
        assert mature  # the genesis coin's descendants and old coinbases are always there
        (op, coin) = rnd.choice(mature)
        signer = NAME_OF[coin.owner]
        someone = rnd.choice(NAMES)
        coinbase_outputs = None
        if kind == "overspend":
            bad = [spend([(op, coin)], signer, [(someone, coin.amount + rnd.randint(1, COIN))])]
        elif kind == "double-spend-in-block":
            bad = [spend([(op, coin)], signer, [(someone, coin.amount)]),
                   spend([(op, coin)], signer, [(someone, coin.amount - 1)])]
        elif kind == "spend-already-spent":
            if spent:
                old = rnd.choice(sorted(spent))
                bad = [spend([(old, Coin(coin.amount, coin.owner, 0, False))], signer,
                             [(someone, 1)])]
            else:  # nothing spent yet: a coin that never existed is refused the same way
                never = OutPoint(bytes(rnd.getrandbits(8) for _ in range(32)), 0)
                bad = [spend([(never, coin)], signer, [(someone, 1)])]
        elif kind == "duplicate-input":
            bad = [spend([(op, coin), (op, coin)], signer, [(someone, coin.amount)])]
        elif kind == "missing-coin":
            fake = OutPoint(bytes(rnd.getrandbits(8) for _ in range(32)), rnd.randint(0, 3))
            bad = [spend([(fake, coin)], signer, [(someone, 1)])]
        elif kind == "spend-later-output":
            first = spend([(op, coin)], signer, [("bob", coin.amount)])
            made = Coin(coin.amount, owner("bob"), height, False)
            later = spend([(OutPoint(first.txid, 0), made)], "bob", [(someone, coin.amount)])
            bad = [later, first]
        elif kind == "wrong-signer":
            thief = rnd.choice([n for n in NAMES if n != signer])
            bad = [spend([(op, coin)], thief, [(thief, coin.amount)])]
        elif kind == "tampered-after-signing":
            honest = spend([(op, coin)], signer, [(someone, coin.amount - 1)])
            redirected = (TxOut(honest.outputs[0].amount, b"\x07" * 20),)  # new recipient
            bad = [Tx(honest.version, honest.inputs, redirected, honest.locktime)]
        elif kind == "premature-coinbase":
            young = [(o, c) for o, c in sorted(coins.items()) if c.coinbase
                     and height - c.height < MATURITY]
            (yop, ycoin) = rnd.choice(young)
            bad = [spend([(yop, ycoin)], NAME_OF[ycoin.owner], [(someone, ycoin.amount)])]
        else:  # coinbase-overclaim
            bad = []
            claim = REGTEST.subsidy(height) + fees + rnd.randint(1, COIN)
            coinbase_outputs = [TxOut(claim, owner(someone))]
        block = self.new_block(rnd, txs + bad, tip, fees, coinbase_outputs)
        out = self.chain.process_block(block)
        code = INVALID_KINDS[kind]
        event(f"invalid: {kind}")
        assert out.status == "invalid", (kind, out)
        assert out.error.code == code, (kind, out.error)
        assert out.connected == [] and out.disconnected == []
        assert self.snapshot() == before
        assert self.chain.invalid_reason(block.hash) == code
        again = self.chain.process_block(block)
        assert again.status == "duplicate-invalid" and again.error.code == code

    @precondition(lambda self: self.chain.height >= 2)
    @rule(rnd=st.randoms(use_true_random=False), with_invalid=st.booleans())
    def competing_branch(self, rnd, with_invalid):
        chain = self.chain
        old_tip, old_height = chain.tip, chain.height
        old_blocks = self.active_blocks()
        fork_height = rnd.randint(max(0, old_height - 6), old_height - 1)
        length = old_height - fork_height + rnd.randint(1, 2)
        bad_at = rnd.randint(0, length - 1) if with_invalid else None
        coins, *_ = replay(old_blocks[:fork_height + 1])
        parent = chain.entry_at(fork_height)
        branch, outcomes, bad_code = [], [], None
        for i in range(length):
            height = fork_height + 1 + i
            tip_height_now = chain.height
            txs, fees, available = random_spends(rnd, coins, height, max_txs=2)
            coinbase_outputs = None
            if i == bad_at:
                mature = [item for item in spendable(available, height) if item[1].amount > 0]
                if mature:
                    op, coin = rnd.choice(mature)
                    txs.append(spend([(op, coin)], NAME_OF[coin.owner],
                                     [(rnd.choice(NAMES), coin.amount + 1)]))
                    bad_code = "bad-txns-in-belowout"
                else:
                    coinbase_outputs = [TxOut(REGTEST.subsidy(height) + fees + 1, owner("dave"))]
                    bad_code = "bad-cb-amount"
            block = self.new_block(rnd, txs, parent, fees, coinbase_outputs)
            out = chain.process_block(block)
            branch.append(block)
            outcomes.append(out)
            if i == bad_at and height > tip_height_now:
                assert out.status == "invalid" and out.error.code == bad_code, out
            if bad_at is None or i < bad_at:
                apply(coins, block, height)
            if block.hash not in chain.index:  # refused before the index: bad-prevblk
                assert out.status == "invalid" and out.error.code == "bad-prevblk", out
                break
            parent = chain.index[block.hash]

        if bad_at is None:
            event("branch: valid, reorg")
        else:
            moved = fork_height + bad_at > old_height
            event(f"branch: invalid ({bad_code}), tip "
                  f"{'moved to the valid prefix' if moved else 'stayed'}")
        if bad_at is None:
            self.expected_tip = branch[-1].hash
            trigger = old_height - fork_height  # the first branch block with more work
            for i, out in enumerate(outcomes):
                if i < trigger:
                    assert out.status == "side" and out.connected == [] == out.disconnected
                elif i == trigger:
                    assert out.status == "connected"
                    assert out.disconnected == old_blocks[:fork_height:-1]
                    assert out.connected == branch[:i + 1]
                else:
                    assert out.status == "connected"
                    assert out.connected == [branch[i]] and out.disconnected == []
        else:
            prefix_height = fork_height + bad_at
            self.expected_tip = (branch[bad_at - 1].hash if prefix_height > old_height
                                 else old_tip.hash)
            assert chain.invalid_reason(branch[bad_at].hash) == bad_code
            for block in branch[bad_at + 1:]:
                assert chain.invalid_reason(block.hash) == "bad-prevblk"
            for block in branch[:bad_at]:
                assert chain.invalid_reason(block.hash) is None
        assert chain.tip.hash == self.expected_tip

    @rule(rnd=st.randoms(use_true_random=False))
    def connect_then_disconnect(self, rnd):
        chain, store = self.chain, self.chain.store
        parent = chain.tip
        before = store.all_coins()
        stats = store.utxo_stats()
        coins, *_ = replay(self.active_blocks())
        txs, fees, _ = random_spends(rnd, coins, parent.height + 1, max_txs=4)
        block = self.new_block(rnd, txs, parent, fees)
        assert chain.process_block(block).status == "connected"
        y1 = self.new_block(rnd, [], parent)
        assert chain.process_block(y1).status == "side"
        y2 = self.new_block(rnd, [], chain.index[y1.hash])
        self.look_up([block, y1, y2])
        out = chain.process_block(y2)
        self.look_up([block, y1, y2])
        assert out.status == "connected"
        assert out.disconnected == [block] and out.connected == [y1, y2]
        self.expected_tip = y2.hash
        added = {}
        for height, y in ((parent.height + 1, y1), (parent.height + 2, y2)):
            for index, o in enumerate(y.txs[0].outputs):
                added[OutPoint(y.txs[0].txid, index)] = Coin(o.amount, o.owner, height, True)
        assert store.all_coins() == {**before, **added}
        assert store.utxo_stats() == (stats[0] + len(added),
                                      stats[1] + sum(c.amount for c in added.values()))
        assert all(store.tx_location(tx.txid) is None for tx in block.txs[1:])
        event(f"connected a block with {len(txs)} spends, then reorganised it away")

    @rule()
    def close_and_reopen(self):
        before = self.snapshot()
        statuses = {h: (e.height, e.status, e.reason) for h, e in self.chain.index.items()}
        self.reopen()
        event("closed and reopened")
        assert self.snapshot() == before
        assert {h: (e.height, e.status, e.reason) for h, e in self.chain.index.items()} == statuses
        assert all(self.chain.invalid_reason(h) is not None
                   for h, (_, status, _) in statuses.items() if status & FAILED)

    @rule(rnd=st.randoms(use_true_random=False),
          fail_at=st.integers(min_value=1, max_value=CONNECT_STATEMENTS + 1))
    def crash_while_connecting(self, rnd, fail_at):
        chain, store = self.chain, self.chain.store
        tip = chain.tip
        coins, *_ = replay(self.active_blocks())
        txs, fees, _ = random_spends(rnd, coins, tip.height + 1, max_txs=3)
        block = self.new_block(rnd, txs, tip, fees)
        before = self.snapshot()
        real_write, real_apply = store._write, store.apply_block
        calls = []

        def write(statements):
            def sabotaged(db):
                statements(FailingDB(db, fail_at))
                raise InjectedFault("crash after the last statement, before COMMIT")
            real_write(sabotaged)

        def apply_block(*args, **kwargs):  # only the connect's transaction crashes
            calls.append(args[2])
            store._write = write
            try:
                return real_apply(*args, **kwargs)
            finally:
                del store._write

        store.apply_block = apply_block
        try:
            chain.process_block(block)
        except InjectedFault:
            pass
        else:
            raise AssertionError("the injected fault did not propagate")
        finally:
            del store.apply_block
        assert calls == [True]  # one connect was attempted, and it crashed
        event(f"crash at statement {fail_at}")
        assert chain.tip is tip
        assert self.snapshot() == before
        assert all(store.tx_location(tx.txid) is None for tx in block.txs)
        other = Store(self.path)  # what is on disk: the previous state
        try:
            assert other.get_meta("tip") == tip.hash
            assert other.all_coins() == before["coins"]
            assert other.utxo_stats() == before["stats"]
            assert other.active_hashes() == before["active"]
        finally:
            other.close()
        # Restarting resumes: the stored body is connected as the best chain.
        self.reopen()
        assert self.chain.tip.hash == block.hash
        self.expected_tip = block.hash

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def coin_cache_answers_as_sqlite(self):
        chain = self.chain
        assert len(chain.coins) <= CACHE_ROOM
        assert_coin_cache_is_the_disk(chain)
        self.look_up(list(self.blocks.values())[-4:])

    @invariant()
    def state_is_the_replay_of_the_active_chain(self):
        chain, store = self.chain, self.chain.store
        assert chain.tip.hash == self.expected_tip
        hashes = [e.hash for e in chain.active]
        assert store.active_hashes() == hashes
        assert store.get_meta("tip") == chain.tip.hash
        assert [e.height for e in chain.active] == list(range(len(hashes)))
        assert all(e.parent is p for p, e in zip(chain.active, chain.active[1:]))
        assert not any(e.failed for e in chain.active)

        blocks = self.active_blocks()
        coins, coinbase_total, fees, _ = replay(blocks)
        utxo = store.all_coins()
        assert utxo == coins
        count, total = store.utxo_stats()
        assert count == len(utxo)
        assert total == sum(c.amount for c in utxo.values())
        assert total == coinbase_total - fees
        assert total <= sum(REGTEST.subsidy(h) for h in range(len(blocks)))
        assert all(c.amount >= 0 for c in utxo.values())
        balances = {}
        for name in NAMES:
            mine = store.coins_of(owner(name))
            balances[name] = sum(c.amount for _, c in mine)
            assert balances[name] >= 0
            assert dict(mine) == {op: c for op, c in coins.items() if c.owner == owner(name)}
            assert sum(row[3] for row in store.history_of(owner(name))) == balances[name]
        assert sum(balances.values()) == total

        positions = {tx.txid: (height, pos) for height, block in enumerate(blocks)
                     for pos, tx in enumerate(block.txs)}
        assert all(store.tx_location(txid) == where for txid, where in positions.items())
        assert store.db.execute("SELECT COUNT(*) FROM txindex").fetchone()[0] == len(positions)
        assert chain.get_block(chain.tip.hash) == blocks[-1]


ChainMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestChainMachine = ChainMachine.TestCase
