"""The tx request tracker's slots (node/txrequest.py): what waits for a free
slot in a peer, and what a freed slot costs."""

import random

from node.txrequest import MAX_PEER_TX_IN_FLIGHT, TxRequestTracker


def txid(n: int) -> bytes:
    return n.to_bytes(32, "big")


def counting_choices(tracker: TxRequestTracker) -> list:
    """Count the tracker's choices of a peer for a txid (one call of ``_choose`` each)."""
    calls = []
    choose = tracker._choose

    def counted(*args):
        calls.append(args[0])
        return choose(*args)
    tracker._choose = counted
    return calls


def test_a_freed_slot_asks_for_the_oldest_waiting_tx_at_the_cost_of_one_choice():
    """A peer announces 150 txs more than it may have in flight: those wait.
    Each answer frees one slot, which goes to the oldest waiting tx, and
    costs one choice, not one per waiting tx (re-choosing all of them at
    every answer made a peer that announced 5,000 txs and answered
    ``notfound`` one at a time cost thousands of choices per frame)."""
    tracker = TxRequestTracker(random.Random(1))
    tracker.add_peer(1)
    total = MAX_PEER_TX_IN_FLIGHT + 150
    for n in range(total):
        assert tracker.announced(1, txid(n), preferred=True)
    first = tracker.requests(0.0)
    assert first == {1: [txid(n) for n in range(MAX_PEER_TX_IN_FLIGHT)]}
    assert tracker.requests(0.0) == {}  # full: nothing more until a slot frees
    choices = counting_choices(tracker)
    asked = list(first[1])
    for answered in range(total):
        tracker.received(1, txid(answered))  # a notfound, say: that request is over
        tracker.forget(txid(answered))
        before = len(choices)
        new = tracker.requests(1.0)
        if answered + MAX_PEER_TX_IN_FLIGHT < total:
            assert new == {1: [txid(answered + MAX_PEER_TX_IN_FLIGHT)]}  # the oldest waiting one
            assert len(choices) - before == 1
        else:
            assert new == {}
        asked += new.get(1, [])
        assert tracker.in_flight(1) == min(MAX_PEER_TX_IN_FLIGHT, total - answered - 1)
    assert asked == [txid(n) for n in range(total)]  # every tx asked once, in announcement order
    assert tracker.limits()[2] == ("per peer: txs waiting for a slot", 0, tracker.limits()[2][2])


def test_a_tx_waiting_on_two_peers_goes_to_the_first_slot_and_the_other_skips_it():
    """Txs announced by two full peers wait in both. The first peer to free a
    slot gets the oldest; when the other frees one, it skips what is in
    flight elsewhere and asks for the next, so no slot stays idle while a
    tx waits and no tx is asked of two peers."""
    tracker = TxRequestTracker(random.Random(2))
    for peer in (1, 2):
        tracker.add_peer(peer)
    for n in range(2 * MAX_PEER_TX_IN_FLIGHT):  # each peer fills up with its own
        tracker.announced(1 + n % 2, txid(n), preferred=True)
    assert {p: len(t) for p, t in tracker.requests(0.0).items()} == {1: MAX_PEER_TX_IN_FLIGHT,
                                                                      2: MAX_PEER_TX_IN_FLIGHT}
    shared = [txid(10_000 + n) for n in range(3)]
    for t in shared:
        for peer in (1, 2):
            tracker.announced(peer, t, preferred=True)
    assert tracker.requests(0.0) == {}  # both full: the three wait in both peers
    tracker.received(2, txid(1))  # peer 2 answers one of its own
    tracker.forget(txid(1))
    assert tracker.requests(1.0) == {2: [shared[0]]}
    tracker.received(1, txid(0))  # peer 1 frees a slot: shared[0] is in flight at 2, skipped
    tracker.forget(txid(0))
    assert tracker.requests(2.0) == {1: [shared[1]]}
    tracker.received(2, shared[0])  # peer 2 delivers shared[0]
    tracker.forget(shared[0])
    assert tracker.requests(3.0) == {2: [shared[2]]}
    assert tracker.requests(3.0) == {}


def test_waiting_txs_of_a_peer_that_leaves_go_to_the_other_announcer():
    """A tx waiting on two full peers: when one of them leaves, its requests
    end and the tx is asked of the other as soon as that one has room."""
    tracker = TxRequestTracker(random.Random(3))
    for peer in (1, 2):
        tracker.add_peer(peer)
    for n in range(2 * MAX_PEER_TX_IN_FLIGHT):
        tracker.announced(1 + n % 2, txid(n), preferred=True)
    tracker.requests(0.0)
    late = txid(99_999)
    tracker.announced(1, late, preferred=True)
    tracker.announced(2, late, preferred=True)
    assert tracker.requests(0.0) == {}
    tracker.remove_peer(2)  # its in-flight txs had only it: forgotten; `late` re-chosen
    assert tracker.requests(1.0) == {}  # peer 1 is still full
    tracker.received(1, txid(0))
    tracker.forget(txid(0))
    assert tracker.requests(2.0) == {1: [late]}
