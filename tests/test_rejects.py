"""The node's recent refusals (node/rejects.py): newest first, at most
``MAX_RECENT_REJECTS`` entries and ``MAX_REJECTED_TX_BYTES`` bytes of refused
transactions, each bound reached; a refused tx whose bytes are kept is
listed with them (``hex``), and ``explaintransaction`` of that hex shows the
check that refused it."""

from chain.tx import Tx
from node import rpc
from node.rejects import MAX_RECENT_REJECTS, MAX_REJECTED_TX_BYTES, RecentRejects
from sim.funding import big_orphan
from sim.scenarios import World


def refusal(n: int) -> dict:
    return {"time": n, "kind": "tx", "id": f"{n:064x}", "reject_reason": "bad-txns-in-belowout",
            "message": "inputs < outputs", "source": "rpc"}


def kept(store: RecentRejects) -> list[str]:
    return [e["id"] for e in store.entries() if "hex" in e]


def test_the_byte_bound_is_reached_exactly_then_the_oldest_bytes_go_first():
    store = RecentRejects(max_entries=10, max_bytes=1_000)
    store.add(refusal(0), bytes(400))
    store.add(refusal(1))  # a block, or a tx not kept: no bytes
    store.add(refusal(2), bytes(600))
    assert store.bytes == 1_000 == store.max_bytes  # at the bound: everything kept
    assert kept(store) == [refusal(2)["id"], refusal(0)["id"]]
    assert store.entries()[0]["hex"] == "00" * 600
    store.add(refusal(3), bytes(1))  # one byte over: the oldest kept bytes go, their entry stays
    assert store.bytes == 601
    assert kept(store) == [refusal(3)["id"], refusal(2)["id"]]
    assert [e["id"] for e in store.entries()] == [refusal(n)["id"] for n in (3, 2, 1, 0)]
    assert store.entries()[-1] == refusal(0)  # listed as before, without hex
    store.add(refusal(4), bytes(1_000))  # the whole bound alone: every other byte goes
    assert store.bytes == 1_000 and kept(store) == [refusal(4)["id"]]
    store.add(refusal(5), bytes(1_001))  # larger than the bound: never kept, nothing else lost
    assert store.bytes == 1_000 and kept(store) == [refusal(4)["id"]]
    assert len(store) == 6


def test_the_count_bound_drops_the_oldest_entry_and_its_bytes():
    store = RecentRejects(max_entries=3, max_bytes=1_000)
    for n in range(3):
        store.add(refusal(n), bytes([n]) * 10)
    assert len(store) == 3 and store.bytes == 30
    store.add(refusal(3))
    assert len(store) == 3 and store.bytes == 20
    assert [e["id"] for e in store.entries()] == [refusal(n)["id"] for n in (3, 2, 1)]
    assert kept(store) == [refusal(2)["id"], refusal(1)["id"]]


def test_a_node_keeps_the_last_refused_txs_within_its_byte_bound_and_explains_them():
    world = World.build(21, 1)
    (v,) = world.honest
    bad = [big_orphan(n) for n in range(MAX_RECENT_REJECTS + 1)]  # about 90 kB each: 9 MB in all
    for tx in bad:  # spending coins nobody has: refused over RPC
        assert not v.submit(tx)
    rejects = rpc.call(v.node, "getrecentrejects", [])
    assert [r["id"] for r in rejects] == [tx.txid.hex() for tx in reversed(bad[1:])]
    with_hex = [r for r in rejects if "hex" in r]
    assert with_hex == rejects[:len(with_hex)]  # the newest ones
    assert sum(len(r["hex"]) // 2 for r in with_hex) == v.node.recent_rejects.bytes <= MAX_REJECTED_TX_BYTES
    assert v.node.recent_rejects.bytes + bad[0].size > MAX_REJECTED_TX_BYTES  # full: one more would not fit
    assert ("recent rejects: tx bytes kept", v.node.recent_rejects.bytes, MAX_REJECTED_TX_BYTES) \
        in v.node.limits()
    for r in with_hex:
        assert Tx.decode(bytes.fromhex(r["hex"])).txid.hex() == r["id"]
    explained = rpc.call(v.node, "explaintransaction", [with_hex[0]["hex"]])
    assert explained["txid"] == rejects[0]["id"] and explained["allowed"] is False
    assert explained["reject_reason"] == rejects[0]["reject_reason"] == "bad-txns-inputs-missingorspent"
    assert explained["steps"][-1]["ok"] is False
    assert explained["steps"][-1]["reject_reason"] == rejects[0]["reject_reason"]
