"""``/metrics`` (node/metrics.py): scraped from real servers on 127.0.0.1 and
parsed with prometheus_client's own parser; every figure moves when the node
does something (a tx accepted, a tx refused with its code, a block, a peer,
a ban, a garbage collection), each node has its own registry, and the HTTP
guard applies."""

import gc
import time

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from chain.coins import Coin
from chain.tx import OutPoint
from node import metrics

from .helpers import make_tx, owner
from .nodes import Network, address, http_rpc, run, wait_for
from .test_network import RawPeer


async def scrape(server, host: str | None = None) -> dict:
    """{sample name + sorted labels: value} of one scrape."""
    headers = {"Host": host} if host else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{server.node.listen}/metrics", headers=headers) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            text = await response.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_the_node(tmp_path):
    async def scenario():
        async with Network(tmp_path, 2) as net:
            a, b = net.nodes
            first = await scrape(a)
            assert value(first, "toychain_peers", direction="inbound") == 1
            assert value(first, "toychain_peers", direction="outbound") == 0
            assert value(await scrape(b), "toychain_peers", direction="outbound") == 1
            wakes = value(first, "toychain_loop_lag_seconds_count")
            await wait_for(lambda: a.metrics.registry.get_sample_value("toychain_loop_lag_seconds_count") > wakes,
                           what="the loop-lag monitor waking up")

            assert len((await http_rpc(a, "generatetoaddress", 101, address("alice"), admin=True))["result"]) == 101
            oldest = (await http_rpc(a, "listunspent", [address("alice")]))["result"][0]  # through the gate
            coin = (OutPoint(bytes.fromhex(oldest["txid"]), oldest["index"]),
                    Coin(oldest["amount"], owner("alice"), 1, True))
            tx = make_tx([coin], "alice", [("bob", coin[1].amount - 10_000)])
            assert (await http_rpc(a, "sendrawtransaction", tx.raw.hex()))["result"] == tx.txid.hex()
            overspend = make_tx([(coin[0], Coin(coin[1].amount * 2, owner("alice"), 1, True))], "alice",
                                [("carol", coin[1].amount * 2 - 10_000)])
            refused = await http_rpc(a, "sendrawtransaction", overspend.raw.hex())
            code = refused["error"]["data"]["reject_reason"]
            after = await scrape(a)

            assert value(after, "toychain_chain_height") == 101
            assert value(after, "toychain_mempool_txs") == 1
            assert value(after, "toychain_mempool_bytes") == tx.size
            assert value(after, "toychain_txs_accepted_total") == 1
            assert value(after, "toychain_txs_rejected_total", code=code) == 1
            assert value(after, "toychain_tx_validation_seconds_count") == 2
            assert value(after, "toychain_block_validation_seconds_count") == 101
            assert value(after, "toychain_loop_lag_seconds_count") > value(first, "toychain_loop_lag_seconds_count")
            assert value(after, "toychain_validations_offloaded_total") >= 101
            gc.collect()  # the process's collections: timed, as the library's process figures
            process = await scrape(a)
            assert value(process, "toychain_gc_pause_max_seconds", generation="2") > 0
            assert value(process, "process_resident_memory_bytes") > 0
            assert value(process, "python_gc_collections_total", generation="2") > 0
            # b has its own registry: it saw the blocks, not a's RPC txs
            other = await scrape(b)
            assert value(other, "toychain_txs_rejected_total", code=code) == 0

            peer = await RawPeer.open(a, "127.0.0.1:1")
            try:
                await peer.handshake()
                await peer.ws.send_bytes(b"binary")  # breaks the protocol: banned
                await peer.wait_closed()
            finally:
                await peer.session.close()
            assert value(await scrape(a), "toychain_bans") == 1
    run(scenario())


def test_metrics_need_no_cookie_but_obey_the_host_guard(tmp_path):
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            [server] = net.nodes
            assert value(await scrape(server, host=f"localhost:{server.port}"), "toychain_chain_height") == 0
            async with aiohttp.ClientSession() as session:
                url = f"http://{server.node.listen}/metrics"
                async with session.get(url, headers={"Host": f"evil.example:{server.port}"}) as response:
                    assert response.status == 403 and "DNS rebinding" in await response.text()
                async with session.get(url, headers={"Origin": "http://evil.example"}) as response:
                    assert response.status == 403
    run(scenario())


def test_plain_counts_export_as_the_library_would(tmp_path):
    """``validated`` counts in plain numbers (node/metrics.py ``Tally``); a
    scrape shows exactly the samples prometheus-client's own ``Histogram``
    and ``Counter`` show for the same observations (``_created`` aside, a
    time: present, and not in the future)."""
    observations = [("tx", 0.00005, None), ("tx", 0.0001, None), ("tx", 0.0003, "bad-txns-in-belowout"),
                    ("tx", 2.0, None), ("tx", 0.0001, "txn-mempool-conflict"),
                    ("tx", 0.002, "bad-txns-in-belowout"), ("block", 0.01, None), ("block", 20.0, None)]
    reference = CollectorRegistry()
    histograms = {"tx": Histogram("toychain_tx_validation_seconds", "", buckets=metrics.TX_BUCKETS,
                                  registry=reference),
                  "block": Histogram("toychain_block_validation_seconds", "", buckets=metrics.BLOCK_BUCKETS,
                                     registry=reference)}
    accepted = Counter("toychain_txs_accepted", "", registry=reference)
    rejected = Counter("toychain_txs_rejected", "", ["code"], registry=reference)
    for kind, seconds, code in observations:
        histograms[kind].observe(seconds)
        if kind == "tx":
            (accepted if code is None else rejected.labels(code)).inc()
    want = {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in reference.collect() for s in family.samples}

    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            [server] = net.nodes
            before = await scrape(server)
            for observation in observations:
                server.metrics.validated(*observation)
            return before, await scrape(server)

    before, after = run(scenario())
    names = ("toychain_tx_validation_seconds", "toychain_block_validation_seconds", "toychain_txs_")
    assert {key for key in after if key[0].startswith(names)} == set(want)
    got = {key: after[key] - before.get(key, 0.0) for key in want if not key[0].endswith("_created")}
    assert got == {key: v for key, v in want.items() if not key[0].endswith("_created")}
    for key in want:
        if key[0].endswith("_created"):
            assert 0 < after[key] <= time.time(), key
