"""The lesson notebooks (docs/lessons/*.ipynb) and the lab API they run on
(toychain/lab.py).

Every notebook is executed top to bottom in a fresh kernel of this venv's
Python, with scripts/lessons_run.py (what ``scripts/lessons`` runs): any
cell that raises fails the test, and so does any text output that differs
from the one committed in the file, so a notebook cannot silently go stale
(``scripts/lessons`` writes them again after a deliberate change). Then the
lab itself: it repeats exactly, its verdicts are the node's, and a fork is
decided by chain work.
"""

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from chain.amounts import COIN
from chain.errors import RuleError
from toychain.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("lessons_run", ROOT / "scripts" / "lessons_run.py")
lessons = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lessons)

TITLES = {"why-a-balance-cannot-go-negative.ipynb": "# Why a balance cannot go negative",
          "double-spends-and-reorgs.ipynb": "# Double spends and reorgs"}


def test_the_lessons_are_there_with_their_outputs():
    paths = lessons.notebooks()
    assert {p.name for p in paths} == set(TITLES)
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        assert notebook.cells[0].source.startswith(TITLES[path.name])
        outputs = lessons.text_outputs(notebook)
        assert outputs and all(outputs), f"{path.name}: a code cell has no committed output"


@pytest.mark.parametrize("name", sorted(TITLES))
def test_each_lesson_runs_and_reproduces_its_committed_outputs(name):
    path = lessons.LESSONS / name
    executed = lessons.execute(path)  # raises at a cell that fails
    assert not [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
                if o.output_type == "error"]
    assert lessons.first_difference(nbformat.read(path, as_version=4), executed) is None


def test_a_stale_output_is_caught(tmp_path):
    path = lessons.LESSONS / "why-a-balance-cannot-go-negative.ipynb"
    committed = nbformat.read(path, as_version=4)
    stale = nbformat.read(path, as_version=4)
    cell = next(c for c in stale.cells if c.cell_type == "code")
    cell.outputs[0].text = cell.outputs[0].text.replace("alice", "alicia")
    assert lessons.first_difference(stale, committed) == (
        "code cell 1, line 1: committed 'alicia  toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm', "
        "now 'alice  toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm'")


def test_printed_text_split_into_several_outputs_is_the_same_text():
    """The kernel may deliver one cell's printing in one stream output or several."""
    path = lessons.LESSONS / "why-a-balance-cannot-go-negative.ipynb"
    committed = nbformat.read(path, as_version=4)
    split = nbformat.read(path, as_version=4)
    cell = next(c for c in split.cells if c.cell_type == "code")
    first = cell.outputs[0]
    half = len(first.text) // 2
    second = nbformat.from_dict({**first, "text": first.text[half:]})
    first.text = first.text[:half]
    cell.outputs.insert(1, second)
    assert lessons.first_difference(split, committed) is None


def test_the_kernel_is_this_venvs_python(tmp_path):
    path = tmp_path / "which.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("import sys, toychain\nprint(sys.prefix)")]), path)
    executed = lessons.execute(path)
    assert executed.cells[0].outputs[0].text.strip() == sys.prefix


# -- the lab ---------------------------------------------------------------------------------

def story(lab: Lab) -> list[str]:
    alice, bob = lab.account("alice"), lab.account("bob")
    mined = lab.mine(10, to=alice)
    pay = lab.pay(alice, [(bob, 10 * COIN)])
    assert lab.submit(pay).accepted
    return [m.hash for m in mined] + [pay.txid.hex(), lab.mine(1)[0].hash]


def test_the_lab_repeats_exactly():
    assert story(Lab()) == story(Lab())


def test_lab_verdicts_are_the_mempools_and_explain_agrees():
    lab = Lab()
    alice, bob, carol = lab.account("alice"), lab.account("bob"), lab.account("carol")
    story(lab)
    assert lab.balance(bob) == 10 * COIN and [c.amount for c in lab.coins(bob)] == [10 * COIN]
    overspend = lab.sign(lab.coins(bob), [(carol, 15 * COIN)], signer=bob)
    verdict = lab.submit(overspend)
    assert (verdict.accepted, verdict.reject_reason) == (False, "bad-txns-in-belowout")
    with pytest.raises(RuleError) as error:
        lab.mempool.check(overspend)
    assert verdict.message == str(error.value) == lab.explain(overspend)["message"]
    assert "FAIL" in lab.explain_text(overspend) and verdict.message in lab.explain_text(overspend)
    with pytest.raises(ValueError, match="bob has 10.00000000 TOY spendable"):
        lab.pay(bob, [(carol, 15 * COIN)])  # a wallet never signs an overspend
    stolen = lab.sign(lab.coins(bob), [(carol, COIN)], signer=alice)
    assert lab.submit(stolen).reject_reason == "bad-txns-wrong-owner"
    honest = lab.pay(bob, [(carol, 5 * COIN)])
    edited = lab.tamper(honest, [(carol, 9 * COIN), (bob, honest.outputs[1].amount - 4 * COIN)])
    assert lab.submit(edited).reject_reason == "bad-txns-bad-signature"
    assert lab.submit(honest).accepted and lab.find(honest.txid.hex()) == "mempool"
    assert lab.coins(bob) == []  # the mempool spends bob's coin: not his to spend again
    assert lab.balance(bob) == 10 * COIN  # confirmed: the sum of his confirmed coins


def test_a_fork_is_decided_by_chain_work_and_the_mempool_follows():
    lab = Lab()
    alice, bob, carol = lab.account("alice"), lab.account("bob"), lab.account("carol")
    lab.mine(10, to=alice)
    coin = lab.coins(alice, mature_only=True)[0]
    to_bob = lab.sign([coin], [(bob, coin.amount - 1000)], alice)
    to_carol = lab.sign([coin], [(carol, coin.amount - 1000)], alice)
    assert lab.submit(to_bob).accepted
    assert lab.submit(to_carol).reject_reason == "txn-mempool-conflict"
    parent = lab.tip
    [main] = lab.mine(1)
    assert main.status == "connected" and lab.find(to_bob.txid.hex()) == "block at height 11"
    [side] = lab.mine(1, txs=[to_carol], parent=parent)
    assert side.status == "side" and lab.tip == main.hash  # equal work: the first seen stays
    [longer] = lab.mine(1, parent=side.hash)
    assert (longer.status, longer.reorg) == ("connected", 1) and lab.tip == longer.hash
    work = {b["hash"]: (b["chainwork"], b["best_chain"]) for b in lab.blocks()}
    assert work[longer.hash][0] > work[main.hash][0] and not work[main.hash][1]
    assert lab.find(to_bob.txid.hex()) == "nowhere" and lab.find(to_carol.txid.hex()) == "block at height 11"
    assert lab.explain(to_bob)["reject_reason"] == "bad-txns-inputs-missingorspent"
    [invalid] = lab.mine(1, txs=[to_bob])
    assert invalid.status == "invalid" and invalid.message.startswith("bad-txns-inputs-missingorspent")
