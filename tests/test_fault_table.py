"""The fault table of chain/errors.py, walked against the contract.

Every reject code says once whether its sender is punished, whether the
object is remembered as invalid, and whether it means "a parent is missing".
These tests read PROTOCOL.md (sections 5, 7 and 8) and check each row
against the sentences that decide it, so the table cannot drift from the
spec; a last test checks that no module outside the table compares reject
codes as strings.
"""

import ast
import re
from pathlib import Path

import pytest

from chain.errors import (BAD_ENCODING, CONSENSUS, FAULTS, NONE, ORPHAN, POLICY, PUNISH,
                          REJECTED, REMEMBER, ALREADY_IN_CHAIN, RuleError)

ROOT = Path(__file__).resolve().parent.parent
SPEC = (ROOT / "tests" / "vectors" / "PROTOCOL.md").read_text()
SHARED_SPEC = ROOT.parent / "shared" / "PROTOCOL.md"

MUTATED = {"bad-txnmrklroot", "bad-txns-duplicate"}


def section(number: int, raw: bool = False) -> str:
    """Section ``number`` of the contract; sentences on one line unless ``raw``."""
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", SPEC, re.S | re.M)
    assert match, f"section {number} not found"
    return match.group(0) if raw else " ".join(match.group(0).split())


def spec_codes() -> dict[str, tuple[str, str]]:
    """code -> (kind, rule text) from the table of section 5."""
    rows = re.findall(r"^\| ([a-zA-Z0-9-]+) \| ([a-z()]+) \| (.*) \|$", section(5, raw=True), re.M)
    return {code: (kind.strip("()"), rule) for code, kind, rule in rows if code != "code"}


def test_the_copy_of_the_contract_is_current():
    if SHARED_SPEC.exists():  # beside a checkout; a clean CI clone has only the copy
        assert SHARED_SPEC.read_text() == SPEC, "copy ../shared/PROTOCOL.md to tests/vectors/"
    assert "## 5. Rules and reject reasons" in SPEC


def test_every_code_of_section_5_has_one_row_of_the_same_kind():
    codes = spec_codes()
    assert len(codes) == 39
    assert set(codes) == set(FAULTS)
    for code, (kind, _) in codes.items():
        assert FAULTS[code].kind == kind, code


def test_never_punish_a_policy_reject():
    for code, fault in FAULTS.items():
        if fault.kind == POLICY:
            assert not fault.tx & PUNISH and not fault.block & PUNISH, code


def test_never_punish_a_decodable_transaction():
    """Section 7: "Never punish ... for a decodable but invalid transaction";
    punish "hex that does not decode to a tx or block"."""
    assert "decodable but invalid transaction" in section(7)
    for code, fault in FAULTS.items():
        assert bool(fault.tx & PUNISH) == (code == "bad-encoding"), code
    assert FAULTS["bad-encoding"].block & PUNISH


def test_blocks_that_break_a_consensus_rule_are_punished_unless_orphaned_too_new_or_mutated():
    assert "merely orphaned, too new or mutated in transit" in section(7)
    assert "headers with bad proof of work" in section(7)
    spared = MUTATED | {"time-too-new", "prev-blk-not-found"}
    for code, fault in FAULTS.items():
        if fault.kind == CONSENSUS and code not in spared:
            assert fault.block & PUNISH, code
        if code in spared:
            assert not fault.block & PUNISH, code


def test_remembered_as_invalid_unless_mutated_high_hash_or_too_new():
    """Section 5: "A block that fails any rule other than the mutation,
    high-hash and time-too-new cases is remembered as invalid"."""
    assert "other than the mutation, `high-hash` and `time-too-new` cases" in section(5)
    codes = spec_codes()
    for code, (kind, rule) in codes.items():
        if "not cached as invalid" in rule:
            assert not FAULTS[code].block & REMEMBER, code
    never = MUTATED | {"high-hash", "time-too-new", "bad-encoding", "prev-blk-not-found"}
    for code, fault in FAULTS.items():
        if fault.kind == CONSENSUS and code not in never:
            assert fault.block & REMEMBER, code
        if code in never:
            assert not fault.block & REMEMBER, code


def test_only_missing_parents_are_orphans():
    """A tx with unknown inputs from a peer goes to the orphan pool (section 5);
    a block whose parent is unknown is "(orphan)" in the table."""
    assert "kept in a bounded orphan pool" in section(5)
    orphans = {(code, side) for code, fault in FAULTS.items()
               for side, act in (("tx", fault.tx), ("block", fault.block)) if act & ORPHAN}
    assert orphans == {("bad-txns-inputs-missingorspent", "tx"), ("prev-blk-not-found", "block")}
    for code, fault in FAULTS.items():  # an orphan is neither punished nor remembered
        for act in (fault.tx, fault.block):
            if act & ORPHAN:
                assert act == ORPHAN, code


def test_block_only_codes_mean_nothing_for_a_loose_tx():
    for code, fault in FAULTS.items():
        if not code.startswith(("bad-txns-", "txn-", "coinbase", "min-relay", "mempool-", "too-long",
                                "bad-encoding")) or code in {"bad-txns-duplicate", "bad-txns-BIP30",
                                                            "bad-txns-accumulated-fee-outofrange"}:
            assert fault.tx == NONE, code


def test_rpc_error_codes_of_section_8():
    text = section(8)
    assert "-26 rejected (missing inputs included), -27 already in chain (`txn-already-known`), -22 bad encoding" in text
    for code, fault in FAULTS.items():
        expected = {"bad-encoding": BAD_ENCODING, "txn-already-known": ALREADY_IN_CHAIN}.get(code, REJECTED)
        assert fault.rpc == expected, code


def test_a_rule_error_reads_its_row():
    error = RuleError("bad-txns-in-belowout", "inputs 1 < outputs 2")
    assert error.fault is FAULTS["bad-txns-in-belowout"]
    assert error.kind == "consensus" and str(error) == "bad-txns-in-belowout: inputs 1 < outputs 2"
    with pytest.raises(ValueError):
        RuleError("not-a-code", "no such rule")


def code_constants(node) -> set[str]:
    """Reject codes written as string literals in ``node`` or a collection literal."""
    items = node.elts if isinstance(node, (ast.Set, ast.List, ast.Tuple)) else [node]
    if isinstance(node, ast.Call) and node.args:  # frozenset({...}), set([...])
        return code_constants(node.args[0])
    return {i.value for i in items if isinstance(i, ast.Constant) and i.value in FAULTS}


def code_comparisons(tree) -> list[int]:
    """Line numbers where reject codes are compared or collected as data."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            if any(code_constants(side) for side in [node.left, *node.comparators]):
                lines.add(node.lineno)
        elif isinstance(node, (ast.Set, ast.List, ast.Tuple)) and len(code_constants(node)) >= 2:
            lines.add(node.lineno)
        elif isinstance(node, ast.Dict) and len(code_constants(ast.List([k for k in node.keys if k]))) >= 2:
            lines.add(node.lineno)
    return sorted(lines)


def test_no_module_outside_the_table_compares_reject_codes():
    """Who is punished, remembered or orphaned comes from FAULTS only: no
    module outside chain/errors.py compares reject codes or keeps its own
    list of them."""
    offenders = []
    for package in ("chain", "node"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "chain" / "errors.py":
                continue
            source = path.read_text()
            for number in code_comparisons(ast.parse(source)):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: "
                                 f"{source.splitlines()[number - 1].strip()}")
    assert offenders == []


def test_the_guard_sees_a_comparison():
    for source in ('if error.code == "time-too-new": pass',
                   'if error.code not in {"bad-txnmrklroot", "time-too-new"}: pass',
                   'SKIP = frozenset({"bad-txnmrklroot", "high-hash"})',
                   'RPC = {"bad-encoding": -22, "txn-already-known": -27}'):
        assert code_comparisons(ast.parse(source)) == [1], source
    assert code_comparisons(ast.parse('raise RuleError("bad-prevblk", "parent")')) == []
