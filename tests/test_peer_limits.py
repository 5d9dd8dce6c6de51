"""Bounded containers of the peer logic pushed past their bounds, one by one
(node/banlist.py, node/txrequest.py); the simulator tests push the others."""

from node.banlist import (BAN_SECONDS, MAX_BANS, MAX_CLAIMS, MAX_PROBES, PROBE_SECONDS,
                          BanList, ListenClaims)
from node.txrequest import MAX_REJECTED_TXIDS, RejectFilter


def test_at_most_max_bans_and_the_one_ending_soonest_goes_first():
    bans = BanList()
    for n in range(MAX_BANS + 1):
        bans.ban(f"127.0.0.1:{n}", "bad", 1000.0 + n)
    assert len(bans.bans) == MAX_BANS
    assert "127.0.0.1:0" not in bans.bans and f"127.0.0.1:{MAX_BANS}" in bans.bans
    assert bans.is_banned("127.0.0.1:1", 1001.0 + BAN_SECONDS - 1)
    assert not bans.is_banned("127.0.0.1:1", 1001.0 + BAN_SECONDS)


def test_probe_results_kept_at_most_max_claims_oldest_out():
    claims = ListenClaims()
    for n in range(MAX_CLAIMS + 1):
        claims.probe_done(f"127.0.0.1:{n}", True, 0.0)
    assert len(claims.probed) == MAX_CLAIMS and "127.0.0.1:0" not in claims.probed


def test_at_most_max_probes_at_once_and_answers_expire():
    claims = ListenClaims()
    assert [claims.start_probe(f"127.0.0.1:{n}") for n in range(MAX_PROBES + 2)] == \
        [True] * MAX_PROBES + [False, False]
    claims.probing["127.0.0.1:0"].append(("127.0.0.1:50000", "bad"))
    assert claims.probe_done("127.0.0.1:0", False, 100.0) == [("127.0.0.1:50000", "bad")]
    assert claims.start_probe("127.0.0.1:99")
    assert claims.answered("127.0.0.1:0", 100.0 + PROBE_SECONDS) is False
    assert claims.answered("127.0.0.1:0", 100.0 + PROBE_SECONDS + 1) is None


def test_reject_filter_keeps_the_newest_max_rejected_txids():
    seen = RejectFilter()
    for n in range(MAX_REJECTED_TXIDS + 1):
        seen.add(n.to_bytes(32, "big"))
    assert len(seen) == MAX_REJECTED_TXIDS
    assert bytes(32) not in seen and MAX_REJECTED_TXIDS.to_bytes(32, "big") in seen
