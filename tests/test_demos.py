"""Every teaching demo (``toychain demo NAME``) run end to end, in fast mode,
against one private 3-node devnet of real node processes shared by the
module: each attack is refused with the right code at every node, balances
are what the demo says before and after, the money supply does not move,
exactly one spend of a double-spent coin survives, and the reorg happens.

The tests check the network themselves (over RPC), not only the outcome the
demo reports, and read the JSON lines the demo prints: a ``start`` line, numbered
``step`` lines, a final ``lesson``, and no negative balance anywhere.
Then the command itself: ``toychain demo overspend --json`` as a subprocess
(its own devnet), ``toychain demo all`` against running nodes given by
``--node``/``--datadir``, and the usage errors.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chain.amounts import COIN
from client.rpc import RpcClientError
from demos import (double_spend, duplicate_input, greedy_miner, leverage, overflow, overspend, reorg,
                   steal, tamper)
from demos.actors import demo_account
from demos.blocks import bits_after
from demos.catalog import DEMOS, ORDER
from demos.narrator import Narrator, toy
from demos.overflow import wrap_int64
from demos.reorg import attacker_success, confirmations_needed
from demos.txs import fee_for
from demos.world import World
from toychain.cli import main

TOYCHAIN = str(Path(sys.executable).parent / "toychain")
STEP_FIELDS = {"demo", "type", "step", "actor", "action", "hope", "answers", "balances", "seen_at",
               "note", "table"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    say = Narrator(as_json=True, out=io.StringIO())
    with World.local(say, tmp_path_factory.mktemp("demo-devnet")) as world:
        setup = [json.loads(line) for line in say.out.getvalue().splitlines()]
        assert [line["type"] for line in setup] == ["start", "step", "step"]
        assert all(line["demo"] == "setup" for line in setup)
        yield world


def play(world: World, module) -> tuple[dict, list[dict]]:
    """Run one demo; its outcome and its JSON lines, checked for shape."""
    out = io.StringIO()
    outcome = module.run(world, Narrator(as_json=True, out=out))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["type"] == "start" and lines[0]["demo"] == module.NAME
    assert lines[-1] == {"demo": module.NAME, "type": "lesson", "lesson": module.LESSON,
                         "outcome": outcome}
    steps = lines[1:-1]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    for step in steps:
        assert set(step) == STEP_FIELDS and step["type"] == "step" and step["demo"] == module.NAME
        for answer in step["answers"]:
            assert set(answer) == {"node", "accepted", "reject_reason", "message"}
            assert answer["accepted"] or (answer["reject_reason"] and answer["message"])
        for amounts in (step["balances"] or {}).values():
            assert amounts["confirmed"] >= 0 and amounts["confirmed"] + amounts["pending"] >= 0
    assert outcome["checks"] and outcome["ok"], [c for c in outcome["checks"] if not c["holds"]]
    return outcome, lines


def refused(answers: list[dict], code: str, world: World) -> bool:
    return (sorted(a["node"] for a in answers) == sorted(n.name for n in world.nodes)
            and all(not a["accepted"] and a["reject_reason"] == code for a in answers))


def unknown_everywhere(world: World, txid: str) -> bool:
    return all(world.tx_state(txid, node) is None for node in world.nodes)


def confirmed_everywhere(world: World, txid: str, depth: int = 1) -> bool:
    return all((world.tx_state(txid, node) or 0) >= depth for node in world.nodes)


def totals(balances: dict) -> dict[str, int]:
    return {name: b["confirmed"] for name, b in balances.items()}


# -- the demos, one by one ------------------------------------------------------------------------

def test_overspend_is_refused_everywhere_and_nothing_moves(world):
    outcome, lines = play(world, overspend)
    assert refused(outcome["answers"], "bad-txns-in-belowout", world)
    assert "inputs 10.00000000 TOY < outputs 15.00000000 TOY" in outcome["answers"][0]["message"]
    assert totals(outcome["balances_before"]) == totals(outcome["balances_after"]) == \
        {"alice": 10 * COIN, "bob": 0}
    assert unknown_everywhere(world, outcome["txid"])
    assert world.supplies() == outcome["supply_before"] == outcome["supply_after"]
    attempt = next(s for s in lines if s["type"] == "step" and s["actor"] == "alice")
    assert "15 TOY" in attempt["action"] and attempt["hope"]


def test_double_spend_ends_with_exactly_one_payment_on_every_node(world):
    outcome, lines = play(world, double_spend)
    both = {outcome["to_bob"], outcome["to_carol"]}
    assert {outcome["confirmed"], outcome["dropped"]} == both
    assert confirmed_everywhere(world, outcome["confirmed"])
    assert unknown_everywhere(world, outcome["dropped"])
    assert len({world.tip(n) for n in world.nodes}) == 1
    # each node kept one of the two and refused the other as a conflict, unless
    # that other one was refused at once where alice sent it and never travelled
    travelled = {txid for txid, a in zip((outcome["to_bob"], outcome["to_carol"]), outcome["sent"])
                 if a["accepted"]}
    assert travelled
    for name, view in outcome["gossip"].items():
        assert {view["kept"], view["refused"]} == both
        conflicts = {r["id"] for r in world.rejects(name) if r["reject_reason"] == "txn-mempool-conflict"}
        assert view["refused"] in conflicts or view["refused"] not in travelled
    assert all(a["accepted"] or a["reject_reason"] == "txn-mempool-conflict" for a in outcome["sent"])
    after = totals(outcome["balances_after"])
    fee = fee_for(1, 2)
    assert after["alice"] == 10 * COIN - 6 * COIN - fee
    assert sorted([after["bob"], after["carol"]]) == [0, 6 * COIN]
    assert after[outcome["paid"]] == 6 * COIN
    assert totals(outcome["balances_before"]) == {"alice": 10 * COIN, "bob": 0, "carol": 0}


def test_steal_is_refused_as_wrong_owner_then_bad_signature(world):
    outcome, _ = play(world, steal)
    assert refused(outcome["wrong_owner"], "bad-txns-wrong-owner", world)
    assert refused(outcome["bad_signature"], "bad-txns-bad-signature", world)
    assert totals(outcome["balances_before"]) == totals(outcome["balances_after"]) == \
        {"alice": 10 * COIN, "mallory": 0}
    assert world.supplies() == outcome["supply_before"]


def test_tamper_breaks_the_signature_and_the_genuine_payment_goes_through(world):
    outcome, lines = play(world, tamper)
    assert refused(outcome["tampered"], "bad-txns-bad-signature", world)
    assert unknown_everywhere(world, outcome["tampered_txid"])
    assert outcome["genuine"]["accepted"] and confirmed_everywhere(world, outcome["genuine_txid"])
    assert totals(outcome["balances_before"]) == {"alice": 10 * COIN, "bob": 0}
    assert totals(outcome["balances_after"]) == {"alice": 7 * COIN - fee_for(1, 2), "bob": 3 * COIN}
    edit = next(s for s in lines if s["type"] == "step" and s["actor"] == "mallory")
    assert edit["table"]["rows"][0] == ["to bob", "3 TOY", "9 TOY"]


def test_overflow_shows_the_wrapped_sum_and_is_refused(world):
    outcome, lines = play(world, overflow)
    assert outcome["output"] == 92_000_000_000 * COIN < 2 ** 63
    assert outcome["wrapped_sum"] == 2 * 92_000_000_000 * COIN - 2 ** 64 == -46_744_073_709_551_616
    assert refused(outcome["vout_toolarge"], "bad-txns-vout-toolarge", world)
    assert refused(outcome["txouttotal_toolarge"], "bad-txns-txouttotal-toolarge", world)
    assert totals(outcome["balances_after"]) == {"mallory": COIN}
    assert world.supplies() == outcome["supply_before"]
    shown = next(s for s in lines if s["type"] == "step" and s["table"])
    assert ["int64 sum (C, wrapped)", "-46,744,073,709,551,616", "-467,440,737.09551616 TOY"] \
        in shown["table"]["rows"]


def test_duplicate_input_is_refused_in_the_mempool_and_in_a_block(world):
    outcome, _ = play(world, duplicate_input)
    assert refused(outcome["mempool"], "bad-txns-inputs-duplicate", world)
    assert refused(outcome["block"], "bad-txns-inputs-duplicate", world)
    assert {n.name: world.tip(n) for n in world.nodes} == outcome["tips_before"] == outcome["tips_after"]
    for node in world.nodes:
        with pytest.raises(RpcClientError) as error:
            world.call(node, "getblockheader", outcome["block_hash"])
        assert error.value.code == -5  # refused before it got a place in the block index
    assert world.supplies() == outcome["supply_before"]
    assert totals(outcome["balances_after"]) == {"mallory": 10 * COIN}


def test_greedy_miner_block_is_refused_with_bad_cb_amount(world):
    supply, tips = world.supplies(), {n.name: world.tip(n) for n in world.nodes}
    outcome, _ = play(world, greedy_miner)
    assert refused(outcome["answers"], "bad-cb-amount", world)
    assert outcome["claimed"] == outcome["subsidy"] + 1_000 * COIN
    assert "coinbase claims 1050.00000000 TOY > subsidy 50.00000000 TOY" in outcome["answers"][0]["message"]
    assert {n.name: world.tip(n) for n in world.nodes} == tips
    assert world.supplies() == supply
    assert totals(outcome["balances_after"]) == {"mallory": 0}


def test_reorg_undoes_the_confirmed_payment_on_every_node(world):
    outcome, lines = play(world, reorg)
    assert outcome["reorg"] and outcome["confirmations_bob_saw"] == 1
    tip = outcome["attack_blocks"][-1]
    assert all(world.tip(n) == tip for n in world.nodes)
    for node in world.nodes:
        assert world.call(node, "getblockheader", outcome["merchant_block"])["confirmations"] == -1
    assert unknown_everywhere(world, outcome["to_bob"])
    assert confirmed_everywhere(world, outcome["to_self"], 2)
    assert totals(outcome["balances_after"]) == {"alice": 10 * COIN - fee_for(1, 1), "bob": 0}
    assert world.linked()  # the network is whole again for whoever comes next
    assert outcome["attacker_success"]["1"] == pytest.approx(0.2045873, abs=1e-7)
    assert outcome["safe_confirmations"] == 5
    paid = next(s for s in lines if s["type"] == "step" and s["actor"] == "alice")
    assert paid["balances"]["bob"]["confirmed"] == 9 * COIN and paid["seen_at"] == "node1"


def test_leverage_debt_is_in_the_ledger_not_on_the_chain(world):
    outcome, lines = play(world, leverage)
    assert outcome["ledger"]["equity"] == -4 * COIN and outcome["owed"] == 4 * COIN
    assert outcome["net_worth"] < 0
    assert refused(outcome["collect"], "bad-txns-wrong-owner", world)
    after = totals(outcome["balances_after"])
    assert after == {"alice": 2 * COIN - fee_for(1, 2), "lender": leverage.DEPOSIT}
    balances = [b for s in lines if s["type"] == "step" and s["balances"] for b in s["balances"].values()]
    assert balances and all(b["confirmed"] >= 0 for b in balances)


def test_forged_blocks_carry_the_bits_the_nodes_require_at_every_height(world):
    """What a dishonest miner computes from RPC alone (including the retarget at
    height 20) matches the bits of every block the nodes accepted."""
    headers = [world.call(None, "getblockheader", world.call(None, "getblockhash", h))
               for h in range(world.height() + 1)]
    assert len(headers) > world.net.retarget_interval + 1
    for parent, child in zip(headers, headers[1:]):
        assert f"{bits_after(world, parent):08x}" == child["bits"], child["height"]


# -- the command ---------------------------------------------------------------------------------------

def test_toychain_demo_overspend_json_as_a_subprocess():
    done = subprocess.run([TOYCHAIN, "demo", "overspend", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["demo"] == "setup" and lines[0]["type"] == "start"
    assert lines[-1]["type"] == "lesson" and lines[-1]["demo"] == "overspend"
    assert lines[-1]["lesson"] == overspend.LESSON and lines[-1]["outcome"]["ok"]
    answers = lines[-1]["outcome"]["answers"]
    assert [(a["node"], a["reject_reason"]) for a in answers] == \
        [(f"node{i}", "bad-txns-in-belowout") for i in (1, 2, 3)]


def test_demo_all_against_running_nodes_skips_only_the_reorg(world):
    # The bank on a running network is a demo account: give dave enough for every demo.
    dave = demo_account("dave")
    world.fund(Narrator(as_json=True, out=io.StringIO()), [(dave, 120 * COIN)])
    args = ["demo", "all", "--json", "--generate", "--bank", "dave"]
    for node in world.devnet.nodes:
        args += ["--node", node.url, "--datadir", str(node.datadir)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    lessons = {line["demo"]: line["outcome"] for line in lines if line["type"] == "lesson"}
    assert set(lessons) == set(DEMOS) - {"reorg"}
    assert all(outcome["ok"] for outcome in lessons.values())
    (skipped,) = [line for line in lines if line["type"] == "skipped"]
    assert skipped["demo"] == "reorg" and "without --node" in skipped["reason"]
    assert "setup" not in {line["demo"] for line in lines}  # no devnet of its own


@pytest.mark.parametrize("args, message", [
    (["demo", "reorg", "--node", "http://127.0.0.1:1"], "needs the devnet it starts itself"),
    (["demo", "double-spend", "--node", "http://127.0.0.1:1"], "needs at least 2 nodes; 1 given"),
    (["demo", "steal", "--datadir", "x"], "more --datadir than --node"),
    (["demo", "steal", "--node", "http://127.0.0.1:1", "--devnet", "d"], "not both"),
    (["demo", "nonsense"], "Invalid value for 'NAME'"),
])
def test_demo_usage_errors_say_what_is_wrong(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_demo_against_an_unreachable_node_fails_in_one_sentence():
    result = CliRunner().invoke(main, ["demo", "steal", "--node", "http://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "cannot reach a node at http://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


# -- the arithmetic the demos show ---------------------------------------------------------------------

def test_whitepaper_table_for_q_one_tenth():
    published = [1.0000000, 0.2045873, 0.0509779, 0.0131722, 0.0034552, 0.0009137, 0.0002428]
    assert [round(attacker_success(0.1, z), 7) for z in range(7)] == published
    assert confirmations_needed(0.1, 0.001) == 5
    assert confirmations_needed(0.3, 0.001) == 24  # the whitepaper's q=0.3 row


def test_int64_wrap_and_toy_formatting():
    assert wrap_int64(2 ** 63 - 1) == 2 ** 63 - 1 and wrap_int64(2 ** 63) == -2 ** 63
    assert wrap_int64(-1) == -1
    assert toy(10 * COIN) == "10 TOY" and toy(150_000_000) == "1.5 TOY"
    assert toy(-46_744_073_709_551_616) == "-467,440,737.09551616 TOY"


def test_every_demo_is_in_the_catalog_once_and_documented():
    assert [m.NAME for m in ORDER] == ["overspend", "double-spend", "steal", "tamper", "overflow",
                                       "duplicate-input", "greedy-miner", "reorg", "leverage"]
    teaching = (Path(__file__).resolve().parent.parent / "docs" / "teaching.md").read_text()
    for module in ORDER:
        assert module.__doc__ and module.LESSON and module.TITLE
        assert f"## `{module.NAME}`" in teaching
