"""``explaintransaction`` (node/explain.py, chain/trace.py): the steps of the
real check, not a second copy of the rules.

Every trace here comes from ``Mempool.check`` run with a ``Trace`` on a
regtest chain (the ``h`` fixture of test_tx_rules.py: height 10) and is
compared with what ``Mempool.accept``, the node's real acceptance, says of
the same tx: the same verdict, the same code, the same sentence. Covered: a
passing tx and every value its steps show (amounts in units, owners as
addresses, heights, the sighash); the failing step of every consensus code a
loose tx can get and of every policy code; every kind of step; the order of
the steps (PROTOCOL.md section 5's reject order); a rule broken on purpose
(monkeypatched), whose trace and verdict change together; the bound on a
7,000-input tx's answer; and the RPC method over HTTP.
"""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from chain import trace as trace_module
from chain import tx_rules
from chain.address import encode_address
from chain.amounts import COIN, MAX_MONEY
from chain.coins import Coin
from chain.errors import CODES, RuleError
from chain.params import REGTEST
from chain.sigcache import SignatureCache
from chain.trace import PER_RULE, Trace
from chain.tx import OutPoint, Tx, TxOut, coinbase_tx
from node import mempool as mempool_module
from node.explain import explain
from node.mempool import MAX_CHAIN, Mempool

from .helpers import Harness, make_tx, owner, pub
from .nodes import run
from .test_rpc import node_and_client
from .test_tx_rules import (FAULTS, big_tx, coin_at, fake_coin, genesis_coin, high_s_twin,
                            plant, with_input)

ROOT = Path(__file__).resolve().parent.parent
TX_RULES = [tx_rules.VERSION, tx_rules.HAS_OUTPUTS, tx_rules.SIZE, tx_rules.OUTPUT_AMOUNT,
            tx_rules.NO_DUPLICATE_INPUT, tx_rules.NOT_COINBASE, tx_rules.FINAL,
            tx_rules.COIN_EXISTS, tx_rules.MATURE, tx_rules.INPUT_RANGE, tx_rules.OVERSPEND,
            tx_rules.PUBKEY, tx_rules.OWNER, tx_rules.SIGNATURE]
POLICY_RULES = [mempool_module.IN_MEMPOOL, mempool_module.NO_CONFLICT, mempool_module.NOT_CONFIRMED,
                mempool_module.MIN_FEE, mempool_module.CHAIN_LIMIT, mempool_module.ROOM]
# The reject codes each rule (a kind of step) can fail with.
RULE_CODES = {
    tx_rules.VERSION: ["bad-txns-version"],
    tx_rules.HAS_OUTPUTS: ["bad-txns-vout-empty"],
    tx_rules.SIZE: ["bad-txns-oversize"],
    tx_rules.OUTPUT_AMOUNT: ["bad-txns-vout-negative", "bad-txns-vout-toolarge",
                             "bad-txns-txouttotal-toolarge"],
    tx_rules.NO_DUPLICATE_INPUT: ["bad-txns-inputs-duplicate"],
    tx_rules.NOT_COINBASE: ["coinbase"],
    tx_rules.FINAL: ["bad-txns-nonfinal"],
    mempool_module.IN_MEMPOOL: ["txn-already-in-mempool"],
    mempool_module.NO_CONFLICT: ["txn-mempool-conflict"],
    mempool_module.NOT_CONFIRMED: ["txn-already-known"],
    tx_rules.COIN_EXISTS: ["bad-txns-inputs-missingorspent"],
    tx_rules.MATURE: ["bad-txns-premature-spend-of-coinbase"],
    tx_rules.INPUT_RANGE: ["bad-txns-inputvalues-outofrange"],
    tx_rules.OVERSPEND: ["bad-txns-in-belowout"],
    mempool_module.MIN_FEE: ["min-relay-fee-not-met"],
    mempool_module.CHAIN_LIMIT: ["too-long-mempool-chain"],
    mempool_module.ROOM: ["mempool-full"],
    tx_rules.PUBKEY: ["bad-txns-bad-pubkey"],
    tx_rules.OWNER: ["bad-txns-wrong-owner"],
    tx_rules.SIGNATURE: ["bad-txns-bad-signature"],
}


@pytest.fixture
def h() -> Harness:
    """Regtest at height 10: alice's coinbase coins of heights 0 and 1 are
    mature for block 11, the others not."""
    return at_height_10()


def at_height_10() -> Harness:
    harness = Harness()
    harness.mine_empty(10)
    return harness


def pool_of(h: Harness, **kwargs) -> Mempool:
    """A mempool as node/server.py builds one (with a signature cache); no fee floor."""
    return Mempool(h.chain, **{"min_fee_rate": 0, "sigcache": SignatureCache(), **kwargs})


def verdict(pool: Mempool, tx: Tx):
    """What the node's real acceptance says: ("allowed", fee) or (code, "CODE: sentence").
    Run on a copy of nothing: an accepted tx is taken out again."""
    try:
        fee, _ = pool.accept(tx)
    except RuleError as error:
        return error.code, str(error)
    pool._remove_one(tx.txid)
    return "allowed", fee


def explained(pool: Mempool, tx: Tx) -> dict:
    """``explain`` of ``tx``, checked against the real acceptance of the same tx."""
    answer = explain(pool, tx)
    assert answer["txid"] == tx.txid.hex()
    json.dumps(answer)  # plain JSON all the way down
    if answer["allowed"]:
        assert verdict(pool, tx) == ("allowed", answer["fee"])
        assert all(step["ok"] for step in answer["steps"]) and "reject_reason" not in answer
    else:
        assert verdict(pool, tx) == (answer["reject_reason"], answer["message"])
        *passed, last = answer["steps"]
        assert all(step["ok"] and "reject_reason" not in step for step in passed)
        assert last["ok"] is False and last["reject_reason"] == answer["reject_reason"]
        assert "fee" not in answer
    return answer


def rules(answer: dict) -> list[str]:
    return [step["rule"] for step in answer["steps"]]


def steps_of(answer: dict, rule: str) -> list[dict]:
    return [step["values"] for step in answer["steps"] if step["rule"] == rule]


# -- a passing tx, every value shown ---------------------------------------------------------

def test_a_passing_tx_shows_every_check_with_its_values(h):
    pool = pool_of(h, min_fee_rate=1)
    coin = genesis_coin(h)
    tx = make_tx([coin], "alice", [("bob", 10 * COIN), ("alice", 39 * COIN)])
    answer = explained(pool, tx)
    assert answer["allowed"] is True and answer["fee"] == COIN
    assert rules(answer) == [
        tx_rules.VERSION, tx_rules.HAS_OUTPUTS, tx_rules.SIZE, tx_rules.OUTPUT_AMOUNT,
        tx_rules.OUTPUT_AMOUNT, tx_rules.NO_DUPLICATE_INPUT, tx_rules.NOT_COINBASE, tx_rules.FINAL,
        mempool_module.IN_MEMPOOL, mempool_module.NO_CONFLICT, mempool_module.NOT_CONFIRMED,
        tx_rules.COIN_EXISTS, tx_rules.MATURE, tx_rules.INPUT_RANGE, tx_rules.OVERSPEND,
        mempool_module.MIN_FEE, mempool_module.CHAIN_LIMIT, mempool_module.ROOM,
        tx_rules.PUBKEY, tx_rules.OWNER, tx_rules.SIGNATURE]
    functions = {step["rule"]: step["function"] for step in answer["steps"]}
    assert functions[tx_rules.OVERSPEND] == "chain.tx_rules.check_tx_inputs"
    assert functions[tx_rules.COIN_EXISTS] == "chain.tx_rules.find_spent_coins"
    assert functions[tx_rules.SIGNATURE] == "chain.tx_rules.check_input_authorization"
    assert functions[tx_rules.FINAL] == "chain.tx_rules.check_final"
    assert functions[mempool_module.MIN_FEE] == "node.mempool.Mempool.check"
    alice, bob = encode_address(owner("alice")), encode_address(owner("bob"))
    txid = tx.txid.hex()
    assert [step["values"] for step in answer["steps"]] == [
        {"version": 1},
        {"outputs": 2},
        {"size": 199, "limit": 1_000_000},
        {"output": 0, "amount": 10 * COIN, "to": bob, "running_sum": 10 * COIN, "max_money": MAX_MONEY},
        {"output": 1, "amount": 39 * COIN, "to": alice, "running_sum": 49 * COIN, "max_money": MAX_MONEY},
        {"inputs": 1, "distinct_coins": 1},
        {"inputs": 1},
        {"locktime": 0, "height": 11},
        {"txid": txid, "in_mempool": False},
        {"inputs": 1},
        {"txid": txid, "confirmed": False},
        {"input": 0, "coin": str(coin[0]), "found": True, "amount": 50 * COIN, "owner": alice,
         "height": 0, "coinbase": True},
        {"input": 0, "coin_height": 0, "height": 11, "confirmations": 11, "maturity": 10},
        {"input": 0, "amount": 50 * COIN, "running_sum": 50 * COIN, "max_money": MAX_MONEY},
        {"total_in": 50 * COIN, "total_out": 49 * COIN, "fee": COIN},
        {"fee": COIN, "size": 199, "min_fee_rate": 1, "min_fee": 199},
        {"ancestors": 0, "most_descendants": 0, "limit": MAX_CHAIN},
        {"mempool_bytes": 0, "size": 199, "max_bytes": 32_000_000, "evict": 0},
        {"input": 0, "pubkey": pub("alice").hex()},
        {"input": 0, "key_owner": alice, "coin_owner": alice},
        {"input": 0, "sighash": tx.sighash(0, coin[1].txout, REGTEST.magic).hex(),
         "signature": tx.inputs[0].signature.hex()}]
    assert len(pool) == 0  # explaining adds nothing


def test_explaining_neither_reads_nor_fills_the_signature_cache(h):
    cache = SignatureCache()
    pool = pool_of(h, sigcache=cache)
    tx = make_tx([genesis_coin(h)], "alice", [("bob", COIN)])
    explain(pool, tx)
    assert len(cache._passed) == 0
    pool.check(tx)  # the untraced check fills it ...
    assert len(cache._passed) == 1
    assert explain(pool, tx)["steps"][-1]["rule"] == tx_rules.SIGNATURE  # ... and a trace still shows it


# -- every failing step ------------------------------------------------------------------------
# code -> builder(h) returning (pool, tx): a tx that breaks that rule alone,
# and the pool it is explained against.

def _consensus(build):
    return lambda h: (pool_of(h), build(h))


def _oversize(h):
    return big_tx(h, 35_710)


def _coinbase(h):
    return coinbase_tx(h.chain.height + 1, [TxOut(50 * COIN, owner("alice"))])


def _outofrange(h):
    coins = [fake_coin(MAX_MONEY, tag=1), fake_coin(1, tag=2)]
    plant(h, coins)
    return make_tx(coins, "alice", [("bob", 1)])


def _in_mempool(h):
    pool, tx = pool_of(h), make_tx([genesis_coin(h)], "alice", [("bob", 49 * COIN)])
    pool.accept(tx)
    return pool, tx


def _conflict(h):
    pool, _ = _in_mempool(h)
    return pool, make_tx([genesis_coin(h)], "alice", [("carol", 49 * COIN)])


def _known(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", 49 * COIN)])
    assert h.mine([tx], fees=COIN).status == "connected"
    return pool_of(h), tx


def _low_fee(h):
    return pool_of(h, min_fee_rate=1), make_tx([genesis_coin(h)], "alice", [("bob", 50 * COIN - 170)])


def _chain_of(h, length: int) -> tuple[Mempool, list[Tx]]:
    """A pool holding a chain of ``length`` - 1 unconfirmed txs, and the chain's last tx."""
    pool, coin, chain = pool_of(h), genesis_coin(h), []
    for _ in range(length):
        tx = make_tx([coin], "alice", [("alice", coin[1].amount - 1000)])
        chain.append(tx)
        coin = (OutPoint(tx.txid, 0), Coin(tx.outputs[0].amount, tx.outputs[0].owner, 11, False))
    for tx in chain[:-1]:
        pool.accept(tx)
    return pool, chain


def _too_long(h):
    pool, chain = _chain_of(h, MAX_CHAIN + 1)
    return pool, chain[-1]


def _full(h):
    return pool_of(h, max_bytes=100), make_tx([genesis_coin(h)], "alice", [("bob", COIN)])


FAILURES = {
    **{code: _consensus(build) for code, build in FAULTS.items()},
    "bad-txns-oversize": _consensus(_oversize),
    "coinbase": _consensus(_coinbase),
    "bad-txns-inputvalues-outofrange": _consensus(_outofrange),
    "txn-already-in-mempool": _in_mempool,
    "txn-mempool-conflict": _conflict,
    "txn-already-known": _known,
    "min-relay-fee-not-met": _low_fee,
    "too-long-mempool-chain": _too_long,
    "mempool-full": _full,
}


@pytest.mark.parametrize("code", list(FAILURES))
def test_each_reject_code_stops_at_its_step(h, code):
    pool, tx = FAILURES[code](h)
    answer = explained(pool, tx)
    assert answer["reject_reason"] == code and answer["message"].startswith(code + ": ")
    assert code in RULE_CODES[answer["steps"][-1]["rule"]]


def test_every_code_a_loose_tx_can_get_is_covered():
    """Every consensus code of a loose tx (not bad-encoding: undecodable bytes
    are an RPC error, -22) and every policy code, each with its own step."""
    loose = {c for c, kind in CODES.items() if kind == "consensus" and (c.startswith("bad-txns-")
             or c == "coinbase")} - {"bad-txns-duplicate", "bad-txns-BIP30",
                                     "bad-txns-accumulated-fee-outofrange"}
    policy = {c for c, kind in CODES.items() if kind == "policy"}
    assert loose | policy == set(FAILURES) == {c for codes in RULE_CODES.values() for c in codes}


def test_every_kind_of_step_is_recorded_passing(h):
    """A passing tx spending a coinbase coin goes through every rule."""
    answer = explained(pool_of(h, min_fee_rate=1), make_tx([genesis_coin(h)], "alice", [("bob", COIN)]))
    assert set(rules(answer)) == set(TX_RULES) | set(POLICY_RULES) == set(RULE_CODES)


def _descendant_limit(h):
    """A mempool parent with MAX_CHAIN - 1 children: one more child would give
    it MAX_CHAIN descendants (the limit counts the parent too)."""
    pool, coin = pool_of(h), genesis_coin(h)
    parent = make_tx([coin], "alice", [("alice", COIN)] * MAX_CHAIN)
    pool.accept(parent)
    children = [make_tx([(OutPoint(parent.txid, i), Coin(COIN, owner("alice"), 11, False))], "alice",
                        [("bob", COIN - 1000)]) for i in range(MAX_CHAIN)]
    for child in children[:-1]:
        pool.accept(child)
    return pool, children[-1], parent


def test_the_failing_values_name_what_was_compared(h):
    """The failing step of every code, with every value it compared."""
    coin = str(genesis_coin(h)[0])
    alice, bob = encode_address(owner("alice")), encode_address(owner("bob"))
    expected = {
        "bad-txns-version": {"version": 2},
        "bad-txns-vout-empty": {"outputs": 0},
        "bad-txns-oversize": {"size": 1_000_025, "limit": 1_000_000},
        "bad-txns-vout-negative": {"output": 1, "amount": -1},
        "bad-txns-vout-toolarge": {"output": 0, "amount": MAX_MONEY + 1, "max_money": MAX_MONEY},
        "bad-txns-txouttotal-toolarge": {"output": 1, "amount": 1, "running_sum": MAX_MONEY + 1,
                                         "max_money": MAX_MONEY},
        "bad-txns-inputs-duplicate": {"input": 1, "coin": coin},
        "coinbase": {"inputs": 0},
        "bad-txns-nonfinal": {"locktime": 12, "height": 11},
        "bad-txns-inputs-missingorspent": {"input": 0, "coin": "77" * 32 + ":0", "found": False},
        "bad-txns-premature-spend-of-coinbase": {"input": 0, "coin_height": 2, "height": 11,
                                                 "confirmations": 9, "maturity": 10},
        "bad-txns-inputvalues-outofrange": {"input": 1, "amount": 1, "running_sum": MAX_MONEY + 1,
                                            "max_money": MAX_MONEY},
        "bad-txns-in-belowout": {"total_in": 50 * COIN, "total_out": 50 * COIN + 1},
        "min-relay-fee-not-met": {"fee": 170, "size": 171, "min_fee_rate": 1, "min_fee": 171},
        "too-long-mempool-chain": {"ancestors": MAX_CHAIN, "limit": MAX_CHAIN},
        "mempool-full": {"mempool_bytes": 0, "size": 171, "max_bytes": 100, "fee": 49 * COIN,
                         "freed": 0},
        "bad-txns-bad-pubkey": {"input": 0, "pubkey": "02" + "ff" * 32},
        "bad-txns-wrong-owner": {"input": 0, "key_owner": bob, "coin_owner": alice},
    }
    first = make_tx([genesis_coin(h)], "alice", [("bob", 49 * COIN)]).txid.hex()  # of _in_mempool
    expected.update({"txn-already-in-mempool": {"txid": first, "in_mempool": True},
                     "txn-mempool-conflict": {"input": 0, "coin": coin, "spent_by": first},
                     "txn-already-known": {"txid": first, "confirmed": True}})
    for code, values in expected.items():
        pool, tx = FAILURES[code](at_height_10())
        assert explained(pool, tx)["steps"][-1]["values"] == values, code
    tx = FAULTS["bad-txns-bad-signature"](h)
    assert explained(pool_of(h), tx)["steps"][-1]["values"] == {
        "input": 0, "sighash": tx.sighash(0, genesis_coin(h)[1].txout, REGTEST.magic).hex(),
        "signature": tx.inputs[0].signature.hex()}
    pool, child, parent = _descendant_limit(h)
    answer = explained(pool, child)
    assert answer["reject_reason"] == "too-long-mempool-chain"
    assert answer["steps"][-1]["values"] == {"ancestors": 1, "ancestor": parent.txid.hex(),
                                             "descendants": MAX_CHAIN, "limit": MAX_CHAIN}


def test_the_longest_chain_allowed_passes_with_its_count(h):
    pool, chain = _chain_of(h, MAX_CHAIN)
    answer = explained(pool, chain[-1])
    assert answer["allowed"]
    [values] = steps_of(answer, mempool_module.CHAIN_LIMIT)
    assert values == {"ancestors": MAX_CHAIN - 1, "most_descendants": MAX_CHAIN - 1, "limit": MAX_CHAIN}


# -- the order --------------------------------------------------------------------------------

def protocol_tx_order() -> list[str]:
    """The tx reject order of PROTOCOL.md section 5 (tests/vectors, checked against
    ../shared by test_fault_table.py), the unnamed "fee and size policy codes"
    filled in in the mempool's order."""
    spec = (ROOT / "tests" / "vectors" / "PROTOCOL.md").read_text()
    paragraph = re.search(r"^- tx: (.*?)^- block:", spec, re.S | re.M).group(1)
    before, after = paragraph.split("then the fee\n  and size policy codes")
    return (re.findall(r"`([a-z0-9-]+)`", before)
            + ["min-relay-fee-not-met", "too-long-mempool-chain", "mempool-full"]
            + re.findall(r"`([a-z0-9-]+)`", after))


def test_steps_come_in_the_protocol_reject_order(h):
    order = protocol_tx_order()
    assert order[0] == "bad-encoding" and order[-1] == "bad-txns-bad-signature"
    tx = make_tx([genesis_coin(h), coin_at(h, 1)], "alice", [("bob", 60 * COIN), ("carol", 39 * COIN)])
    answer = explained(pool_of(h, min_fee_rate=1), tx)
    # every code a loose tx can get has its step (bad-encoding is the decoder's: -22) ...
    assert {c for s in answer["steps"] for c in RULE_CODES[s["rule"]]} == set(order) - {"bad-encoding"}
    # ... and, leaving out the repeats for input 1 and output 1, the steps' codes come in
    # the protocol's order
    first = [s for s in answer["steps"]
             if s["values"].get("input", 0) == 0 and s["values"].get("output", 0) == 0]
    positions = [order.index(code) for s in first for code in RULE_CODES[s["rule"]]]
    assert positions == sorted(positions), [s["rule"] for s in first]
    # inputs one by one, in input order, for each per-input rule; outputs likewise
    per_input = [tx_rules.MATURE, tx_rules.INPUT_RANGE]
    inputs = [(s["values"]["input"], s["rule"]) for s in answer["steps"] if s["rule"] in per_input]
    assert inputs == [(i, r) for i in (0, 1) for r in per_input]
    auth = [tx_rules.PUBKEY, tx_rules.OWNER, tx_rules.SIGNATURE]
    inputs = [(s["values"]["input"], s["rule"]) for s in answer["steps"] if s["rule"] in auth]
    assert inputs == [(i, r) for i in (0, 1) for r in auth]
    assert [v["input"] for v in steps_of(answer, tx_rules.COIN_EXISTS)] == [0, 1]
    assert [v["output"] for v in steps_of(answer, tx_rules.OUTPUT_AMOUNT)] == [0, 1]


def test_when_several_rules_break_the_trace_stops_at_the_first(h):
    """The order tests of test_tx_rules.py, seen in the trace: a tx both
    overspending and signed by the wrong key stops at the overspend."""
    tx = make_tx([genesis_coin(h)], "bob", [("bob", 51 * COIN)])
    answer = explained(pool_of(h), tx)
    assert answer["reject_reason"] == "bad-txns-in-belowout"
    assert tx_rules.OWNER not in rules(answer)


# -- a broken rule: the trace and the verdict change together ------------------------------------

def test_a_lenient_overspend_rule_changes_trace_and_verdict_together(h, monkeypatch):
    pool = pool_of(h)
    overspend = FAULTS["bad-txns-in-belowout"](h)
    before = explained(pool, overspend)
    assert before["reject_reason"] == "bad-txns-in-belowout"
    assert before["steps"][-1]["rule"] == tx_rules.OVERSPEND

    def lenient(tx, spent, height, net, trace=None):
        """check_tx_inputs without the overspend comparison: what a buggy node would run."""
        return max(0, sum(c.amount for c in spent) - sum(o.amount for o in tx.outputs))
    monkeypatch.setattr(mempool_module, "check_tx_inputs", lenient)
    after = explained(pool, overspend)
    assert after["allowed"] is True and after["fee"] == 0
    assert tx_rules.OVERSPEND not in rules(after) and tx_rules.MATURE not in rules(after)
    assert rules(after)[-1] == tx_rules.SIGNATURE


def test_a_wrong_signature_check_changes_trace_and_verdict_together(h, monkeypatch):
    pool = pool_of(h)
    forged = FAULTS["bad-txns-bad-signature"](h)
    before = explained(pool, forged)
    assert before["steps"][-1] == {**before["steps"][-1], "rule": tx_rules.SIGNATURE, "ok": False}
    monkeypatch.setattr(tx_rules, "verify_with", lambda key, signature, digest: True)
    after = explained(pool, forged)
    assert after["allowed"] is True
    assert after["steps"][-1]["rule"] == tx_rules.SIGNATURE and after["steps"][-1]["ok"] is True
    assert after["steps"][-1]["values"] == before["steps"][-1]["values"]  # the same comparison, judged otherwise


def test_a_changed_limit_shows_in_the_values_and_the_verdict(h, monkeypatch):
    pool = pool_of(h)
    tx = make_tx([genesis_coin(h)], "alice", [("bob", 10 * COIN)])
    assert explained(pool, tx)["allowed"]
    monkeypatch.setattr(tx_rules, "MAX_MONEY", 5 * COIN)
    answer = explained(pool, tx)
    assert answer["reject_reason"] == "bad-txns-vout-toolarge"
    assert answer["steps"][-1]["values"] == {"output": 0, "amount": 10 * COIN, "max_money": 5 * COIN}


# -- bounds ---------------------------------------------------------------------------------------

def test_the_trace_lists_a_few_steps_per_rule_and_counts_the_rest():
    trace = Trace(per_rule=2)
    for index in range(5):
        trace.passed("a rule", test_the_trace_lists_a_few_steps_per_rule_and_counts_the_rest,
                     {"input": index})
    trace.failed("a rule", Trace, {"input": 5}, RuleError("bad-txns-bad-pubkey", "x"))
    steps = trace.steps()
    assert [s["values"] for s in steps] == [{"input": 0}, {"input": 1}, {"unlisted": 3}, {"input": 5}]
    assert steps[0]["function"] == f"{__name__}.test_the_trace_lists_a_few_steps_per_rule_and_counts_the_rest"
    assert steps[-1] == {"rule": "a rule", "function": "chain.trace.Trace", "ok": False,
                         "values": {"input": 5}, "reject_reason": "bad-txns-bad-pubkey"}


def test_a_7000_input_tx_gets_a_small_answer(h):
    """The largest tx there can be (7,000 inputs, ~930 kB): every input checked,
    PER_RULE of each per-input rule listed, the rest counted; tens of kB of JSON."""
    n = 7_000
    fan = make_tx([genesis_coin(h)], "alice", [("alice", COIN // 1000)] * n)
    assert h.mine([fan], fees=50 * COIN - n * (COIN // 1000)).status == "connected"
    coins = [(OutPoint(fan.txid, i), h.chain.get_coin(OutPoint(fan.txid, i))) for i in range(n)]
    tx = make_tx(coins, "alice", [("bob", n * (COIN // 1000) - 1_000_000)])
    assert 900_000 < tx.size < 1_000_000
    answer = explained(pool_of(h, min_fee_rate=1), tx)
    assert answer["allowed"] is True
    for rule in (tx_rules.COIN_EXISTS, tx_rules.INPUT_RANGE, tx_rules.PUBKEY, tx_rules.OWNER,
                 tx_rules.SIGNATURE):
        listed = steps_of(answer, rule)
        assert [v.get("input") for v in listed[:PER_RULE]] == list(range(PER_RULE))
        assert listed[PER_RULE:] == [{"unlisted": n - PER_RULE}]
    assert len(json.dumps(answer)) < 40_000
    # a failure far down the list is still shown, after the counted ones
    bad = with_input(tx, 6_999, signature=high_s_twin(tx.inputs[6_999].signature))
    answer = explained(pool_of(h, min_fee_rate=1), bad)
    assert answer["reject_reason"] == "bad-txns-bad-signature"
    assert answer["steps"][-1]["values"]["input"] == 6_999
    assert steps_of(answer, tx_rules.SIGNATURE)[PER_RULE] == {"unlisted": n - PER_RULE - 1}


# -- over RPC ----------------------------------------------------------------------------------------

def test_explaintransaction_over_rpc(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            await client.generate(10)
            coin = (OutPoint(REGTEST.genesis.txs[0].txid, 0), server.node.chain.get_coin(
                OutPoint(REGTEST.genesis.txs[0].txid, 0)))
            overspend = make_tx([coin], "alice", [("bob", 60 * COIN)])
            answer = await client.call("explaintransaction", overspend.raw.hex())
            assert answer == explain(server.node.mempool, overspend)
            error = await client.error("sendrawtransaction", overspend.raw.hex())
            [tested] = await client.call("testmempoolaccept", [overspend.raw.hex()])
            assert answer["message"] == error["message"] == tested["message"] == (
                "bad-txns-in-belowout: inputs 50.00000000 TOY < outputs 60.00000000 TOY")
            assert answer["allowed"] is False and answer["reject_reason"] == "bad-txns-in-belowout"
            good = make_tx([coin], "alice", [("bob", 49 * COIN)])
            answer = await client.call("explaintransaction", good.raw.hex().upper())
            assert answer["allowed"] is True and answer["fee"] == COIN
            assert await client.call("getrawmempool") == []  # explaining adds nothing
            for bad in ("zz", "00"):
                error = await client.error("explaintransaction", bad)
                assert error["code"] == -22 and error["data"] == {"reject_reason": "bad-encoding"}
            assert (await client.error("explaintransaction"))["code"] == -8
            assert (await client.error("explaintransaction", [good.raw.hex()]))["code"] == -22
    run(scenario())


def test_explaintransaction_takes_turns_like_the_other_heavy_calls():
    from node import rpc
    assert "explaintransaction" in rpc.HEAVY and "explaintransaction" not in rpc.ADMIN
    assert trace_module.PER_RULE == PER_RULE
