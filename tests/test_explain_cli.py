"""``toychain explain HEX|TXID`` and ``toychain wallet send --explain``, run as
real processes against a real regtest node process (the fixtures of
test_wallet.py): the table for people (whole addresses and txids in a
narrow captured output), ``--json``, a txid looked up in the chain, a
refused txid (explained from the bytes the node keeps of its last refusals;
once they are gone the command says so, with the node's reason), an unknown txid, bad hex, and the wallet's trace of a payment and
of a deliberate overspend, before it is sent.
"""

import json

import pytest

from chain.amounts import format_toy
from client.rpc import RpcClientError
from node.rejects import MAX_REJECTED_TX_BYTES
from sim.funding import big_orphan

from .test_wallet import BOB, error_line, node, alice_wallet, ok_json, run, wait_confirmed, wallet  # noqa: F401

OVERSPEND = ("inputs >= outputs: the overspend rule", "chain.tx_rules.check_tx_inputs")


def explain(node, *args: str):
    return run(["explain", "--node", node.url, *args], password=None)


def test_wallet_send_explain_shows_the_check_before_sending(node, alice_wallet):
    sent = ok_json(wallet(alice_wallet, "send", BOB, "0.5", "--yes", "--explain", node=node.url))
    trace = sent["explain"]
    assert trace["txid"] == sent["txid"] and trace["allowed"] is True and trace["fee"] == sent["fee"]
    assert [s["rule"] for s in trace["steps"]][-1].startswith("the signature verifies")
    wait_confirmed(node, sent["txid"])

    # for people: the table, then the verdict, then the wallet's own lines
    people = wallet(alice_wallet, "send", BOB, "0.5", "--yes", "--explain", node=node.url, as_json=False)
    assert people.returncode == 0, people.stderr
    out = people.stdout
    assert "what the node will check, step by step" in out
    assert OVERSPEND[0] in out and OVERSPEND[1] in out
    assert "allowed, fee 0.00000199 TOY" in out
    assert out.index("allowed, fee") < out.index("Sent: txid ")
    assert BOB in out  # the payee's address, whole, in the "to" of output 0
    txid = out.split("Sent: txid ")[1].split()[0]
    wait_confirmed(node, txid)

    # a confirmed txid: looked up, explained, and the check says why resending it does nothing
    table = explain(node, txid)
    assert table.returncode == 0, table.stderr
    assert "FAIL" in table.stdout and "txn-already-known" in table.stdout
    assert f"refused: txn-already-known: tx {txid} is already confirmed" in table.stdout
    answer = ok_json(explain(node, txid.upper(), "--json"))
    assert answer["reject_reason"] == "txn-already-known" and answer["txid"] == txid


def test_an_overspend_is_explained_then_refused_by_the_node(node, alice_wallet):
    result = wallet(alice_wallet, "send", BOB, "100000", "--yes", "--overspend-anyway", "--explain",
                    node=node.url)
    assert result.returncode == 1
    assert error_line(result).startswith("Error: the node refused the transaction: bad-txns-in-belowout: ")
    trace = json.loads(result.stdout)["explain"]
    assert trace["allowed"] is False and trace["reject_reason"] == "bad-txns-in-belowout"
    last = trace["steps"][-1]
    assert (last["rule"], last["function"], last["ok"]) == (*OVERSPEND, False)
    assert last["values"]["total_out"] == 100_000 * 10 ** 8
    assert error_line(result).endswith(trace["message"])  # the node's sentence, as explained

    people = wallet(alice_wallet, "send", BOB, "100000", "--yes", "--overspend-anyway", "--explain",
                    node=node.url, as_json=False)
    assert people.returncode == 1
    assert "FAIL" in people.stdout and "bad-txns-in-belowout" in people.stdout
    assert f"total_out: {format_toy(100_000 * 10 ** 8)}" in people.stdout
    assert "refused: bad-txns-in-belowout: inputs " in people.stdout

    # its txid: the node keeps the bytes of what it refused lately, so the same check is shown
    again = ok_json(explain(node, trace["txid"], "--json"))
    assert again == trace
    # once newer refusals have pushed its bytes out (node/rejects.py), the command says so
    for n in range(MAX_REJECTED_TX_BYTES // big_orphan(0).size + 1):
        with pytest.raises(RpcClientError):
            node.call("sendrawtransaction", big_orphan(n).raw.hex())
    refused = error_line(explain(node, trace["txid"]))
    assert refused.startswith(f"Error: the node refused tx {trace['txid']} (bad-txns-in-belowout: inputs ")
    assert "no longer keeps its bytes (only the last refused ones): give the transaction's hex" in refused


def test_explain_by_hex_and_every_bad_input(node):
    assert error_line(explain(node, "00" * 32)).startswith(
        f"Error: no transaction {'00' * 32} in the node's mempool or chain")
    assert error_line(explain(node, "zz")).startswith("Error: bad-encoding: ")
    assert error_line(run(["explain", "--node", "http://127.0.0.1:9", "00" * 40], password=None)) \
        .startswith("Error: cannot reach a node at http://127.0.0.1:9")
    # the genesis coinbase, by hex: a coinbase is never valid outside a block
    genesis = node.call("getrawtransaction", node.call("getblock", node.call("getblockhash", 0))["tx"][0])
    answer = ok_json(explain(node, genesis["hex"], "--json"))
    assert answer["reject_reason"] == "coinbase" and answer["steps"][-1]["reject_reason"] == "coinbase"
    table = explain(node, genesis["hex"])
    assert table.returncode == 0 and "chain.tx_rules.check_not_coinbase" in table.stdout
    assert "refused: coinbase: a transaction with no inputs" in table.stdout
    assert "toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm" in table.stdout  # alice's, whole, at 40 columns
