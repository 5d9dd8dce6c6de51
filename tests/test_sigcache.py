"""The signature cache: a pass is remembered exactly, a failure never is."""

import pytest

from chain import tx_rules
from chain.sigcheck import ParallelVerifier
from chain.errors import RuleError
from chain.params import DEVNET
from chain.sigcache import SignatureCache
from node.mempool import Mempool

from .helpers import COIN, Harness, spend


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = tx_rules.verify_with

    def counting(key, signature, digest):
        calls.append(digest)
        return real(key, signature, digest)
    monkeypatch.setattr(tx_rules, "verify_with", counting)
    return calls


def funded():
    h = Harness()
    h.mine_empty(10)
    return h, h.mature_coins_of("alice")[0]


def test_a_pass_is_checked_once(counted):
    h, coin = funded()
    tx = spend([coin], "alice", [("bob", 10 * COIN)])
    cache = SignatureCache()
    tx_rules.check_authorizations(tx, [coin[1]], h.net.magic, cache)
    tx_rules.check_authorizations(tx, [coin[1]], h.net.magic, cache)
    assert len(counted) == 1


def test_a_failure_is_never_cached(counted):
    h, coin = funded()
    tx = spend([coin], "mallory", [("mallory", 10 * COIN)])  # wrong key for alice's coin
    cache = SignatureCache()
    for _ in range(2):
        with pytest.raises(RuleError) as error:
            tx_rules.check_authorizations(tx, [coin[1]], h.net.magic, cache)
        assert error.value.code == "bad-txns-wrong-owner"
    assert len(cache._passed) == 0


def test_the_key_covers_network_and_coin(counted):
    h, coin = funded()
    tx = spend([coin], "alice", [("bob", 10 * COIN)])
    cache = SignatureCache()
    tx_rules.check_authorizations(tx, [coin[1]], h.net.magic, cache)
    with pytest.raises(RuleError) as error:  # same tx, other network: checked again, and refused
        tx_rules.check_authorizations(tx, [coin[1]], DEVNET.magic, cache)
    assert error.value.code == "bad-txns-bad-signature"
    lying = coin[1]._replace(amount=coin[1].amount + 1)
    with pytest.raises(RuleError) as error:  # same tx, a coin with another amount
        tx_rules.check_authorizations(tx, [lying], h.net.magic, cache)
    assert error.value.code == "bad-txns-bad-signature"
    assert len(counted) == 3


def test_a_block_of_mempool_txs_is_not_verified_again(counted):
    cache = SignatureCache()
    verifier = ParallelVerifier(workers=2, min_jobs=1, cache=cache)
    h = Harness(verifier=verifier)
    h.mine_empty(10)
    pool = Mempool(h.chain, sigcache=cache)
    txs = [spend([coin], "alice", [("bob", coin[1].amount - 1000)]) for coin in h.mature_coins_of("alice")]
    for tx in txs:
        pool.accept(tx)
    checked_in_mempool = len(counted)
    outcome = h.mine(txs, fees=1000 * len(txs))
    assert outcome.status == "connected"
    assert checked_in_mempool == len(txs) and len(counted) == checked_in_mempool
    assert verifier.sent == 0  # nor in the worker processes
    verifier.close()
