"""``/metrics``: one node's figures in Prometheus's text format, for people who run networks.

Each node has its own ``CollectorRegistry`` (several nodes run in one test
process; the library's global registry would mix them). Two kinds of
figures:

* recorded as they happen: the event loop's lag (``LoopLagMonitor`` hands
  every wake-up to ``loop_lag``), how long each tx check and each block took
  (``validated``, which the node calls through its ``observe`` hook), and
  the txs accepted and refused by reject code. ``validated`` runs for every
  tx, so it counts in plain numbers (``Tally``: a list of ints; about a
  fifth of what the library's ``Histogram.observe`` and ``Counter.inc``
  cost, which take a lock each) that ``_TalliesCollector`` turns into the
  same histograms and counters, ``_created`` samples included, at scrape
  time;
* read when scraped (``_StateCollector``): mempool size and bytes, orphans,
  peers by direction, bans, chain height, the largest loop lag so far, how
  many calls ran on the validation thread and how many wait for it now;
* the process (the library's ``ProcessCollector`` and ``GCCollector``: CPU,
  memory, file descriptors, collections) and how long the garbage collector
  held the interpreter (``GcPauses``, from ``gc.callbacks``): a full
  collection stops every thread, the loop included. These are per process:
  in a process that runs several nodes (the tests), each shows them all.

The server reads them while it holds the node (``NodeGate.held``), so a
scrape never sees the mempool half-updated; during a long validation it
answers when that ends. The node calls ``validated`` only while it is held
too (on the loop, or on the validation thread while the loop waits), so the
plain counts are never written by two threads at once, nor read half-written. Names follow Prometheus's conventions (``_seconds``,
``_bytes``, ``_total``); ``docs/metrics.md`` lists them.
"""

import gc
import math
import time
from bisect import bisect_left

from prometheus_client import CollectorRegistry, GCCollector, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.utils import floatToGoString

from .gate import NodeGate
from .looplag import LoopLagMonitor
from .node import Node

CONTENT_TYPE = CONTENT_TYPE_LATEST
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TX_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BLOCK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class NodeMetrics:
    def __init__(self, node: Node, gate: NodeGate, monitor: LoopLagMonitor):
        self.registry = CollectorRegistry()
        r = self.registry
        self.loop_lag = Histogram("toychain_loop_lag_seconds",
                                  "How late the event loop woke up, per wake-up (node/looplag.py).",
                                  buckets=LAG_BUCKETS, registry=r)
        self.tx_seconds = Tally(TX_BUCKETS)
        self.block_seconds = Tally(BLOCK_BUCKETS)
        self.accepted = 0
        self.rejected: dict[str, int] = {}  # reject code -> txs refused with it (a code of FAULTS: RuleError takes no other)
        self.rejected_since: dict[str, float] = {}  # reject code -> when the first was (``_created``)
        self.created = time.time()
        r.register(_TalliesCollector(self))
        self.gc_pauses = GcPauses()
        r.register(_StateCollector(node, gate, monitor, self.gc_pauses))
        ProcessCollector(registry=r)
        GCCollector(registry=r)

    def validated(self, kind: str, seconds: float, code: str | None) -> None:
        """The node's ``observe`` hook: a tx (``code`` None when accepted) or a
        block was just validated. Called on the validation thread too, while
        the node is held (see the module's docstring)."""
        if kind == "block":
            self.block_seconds.observe(seconds)
            return
        self.tx_seconds.observe(seconds)
        if code is None:
            self.accepted += 1
        elif code in self.rejected:
            self.rejected[code] += 1
        else:
            self.rejected[code] = 1
            self.rejected_since[code] = time.time()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        self.gc_pauses.close()


class Tally:
    """A histogram in plain numbers: how many observations fell in each
    bucket (``le`` inclusive, as Prometheus's), their sum, since when."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> Metric:
        """What the library's ``Histogram`` would export: cumulative buckets,
        count, sum and created."""
        metric = Metric(name, documentation, "histogram")
        total = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts):
            total += count
            metric.add_sample(f"{name}_bucket", {"le": floatToGoString(bound)}, total)
        metric.add_sample(f"{name}_count", {}, total)
        metric.add_sample(f"{name}_sum", {}, self.sum)
        metric.add_sample(f"{name}_created", {}, self.created)
        return metric


class _TalliesCollector:
    """``NodeMetrics``'s plain counts as the histograms and counters they stand for."""

    def __init__(self, metrics: NodeMetrics):
        self.metrics = metrics

    def collect(self):
        m = self.metrics
        yield m.tx_seconds.family("toychain_tx_validation_seconds",
                                  "Time to check one tx for the mempool, accepted or not.")
        yield m.block_seconds.family("toychain_block_validation_seconds",
                                     "Time to process one block (connect, reorg, or refuse).")
        yield CounterMetricFamily("toychain_txs_accepted", "Txs accepted to the mempool.",
                                  value=m.accepted, created=m.created)
        rejected = CounterMetricFamily("toychain_txs_rejected", "Txs refused by the mempool, by reject code.",
                                       labels=["code"])
        for code, count in m.rejected.items():
            rejected.add_metric([code], count, created=m.rejected_since[code])
        yield rejected


class GcPauses:
    """Time spent in each garbage collection, by generation (``gc.callbacks``).
    The callback only stores floats in lists made beforehand: it runs inside
    whatever allocation triggered the collection, and must neither allocate
    tracked objects nor take a lock that code may hold."""

    def __init__(self):
        self.seconds = [0.0, 0.0, 0.0]
        self.max = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation, spent = info["generation"], time.perf_counter() - self._started
        self.seconds[generation] += spent
        if spent > self.max[generation]:
            self.max[generation] = spent

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


class _StateCollector:
    """Gauges read from the node at scrape time."""

    def __init__(self, node: Node, gate: NodeGate, monitor: LoopLagMonitor, gc_pauses: GcPauses):
        self.node, self.gate, self.monitor, self.gc_pauses = node, gate, monitor, gc_pauses

    def collect(self):
        node = self.node
        yield GaugeMetricFamily("toychain_mempool_txs", "Txs in the mempool.", value=len(node.mempool))
        yield GaugeMetricFamily("toychain_mempool_bytes", "Bytes of txs in the mempool.",
                                value=node.mempool.bytes)
        yield GaugeMetricFamily("toychain_orphan_txs", "Txs waiting for their parents.", value=len(node.orphans))
        peers = GaugeMetricFamily("toychain_peers", "Peers past the handshake, by direction.",
                                  labels=["direction"])
        for direction, inbound in (("inbound", True), ("outbound", False)):
            peers.add_metric([direction], sum(1 for p in node.peers.values()
                                              if p.handshake_done and p.inbound == inbound))
        yield peers
        yield GaugeMetricFamily("toychain_bans", "Addresses banned now.", value=len(node.banlist.bans))
        yield GaugeMetricFamily("toychain_chain_height", "Height of the active chain's tip.",
                                value=node.chain.height)
        yield GaugeMetricFamily("toychain_loop_lag_max_seconds", "The largest event-loop lag since start.",
                                value=self.monitor.max)
        yield CounterMetricFamily("toychain_validations_offloaded", "Calls run on the validation thread.",
                                  value=self.gate.offloaded)
        yield GaugeMetricFamily("toychain_node_calls_waiting",
                                "Calls into the node waiting for a validation to end (node/gate.py).",
                                value=self.gate.waiting)
        pauses = self.gc_pauses
        total = CounterMetricFamily("toychain_gc_pause_seconds", "Time in garbage collections, by generation "
                                    "(the whole process).", labels=["generation"])
        longest = GaugeMetricFamily("toychain_gc_pause_max_seconds", "The longest garbage collection since "
                                    "start, by generation (the whole process).", labels=["generation"])
        for generation in range(3):
            total.add_metric([str(generation)], pauses.seconds[generation])
            longest.add_metric([str(generation)], pauses.max[generation])
        yield total
        yield longest
