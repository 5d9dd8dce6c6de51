"""Bans, and whose address a misbehaving peer's ban falls on.

Theory of operation
-------------------
A ban refuses connections from a "host:port" key for ``BAN_SECONDS``
(PROTOCOL.md section 7). The key of an outbound peer is the address we
dialled; that of an inbound peer is its host with the port it claims in
``listen`` (its source port if it claims none), so that one bad process on
127.0.0.1 does not get every other local node banned. Bans never apply to
the peers the operator named (``--peer``, ``addnode``): those are only
disconnected, and dialled again as usual.

A claim is only words, and a ban on a claimed address falls on whoever
really listens there. So that no third party can get an honest node banned
by claiming its port and misbehaving, a claim becomes the ban key only when
it is *harmless* (``ListenClaims``): nothing else answers at that address.
On the version of an inbound peer that claims an address the node *probes*
it: connects and hangs up at once (at most ``MAX_PROBES`` at a time; an
address we already have an outbound connection to needs no probe; answers
are kept ``PROBE_SECONDS``). If nothing answers, a ban on the claimed
address hurts nobody else, and it is the key; if something answers, the
ban falls on the peer's source "host:port" instead, which ends that
connection and harms no node. A peer punished while its probe is still
running is disconnected at once; its ban waits for the probe's answer.

(A scheme that "proved" a claim by echoing back a nonce we sent when we
dialled that address was tried and dropped: the echo a node sends is taken
from what a peer claiming our address told it, so a liar could plant it.)

Bounded: ``MAX_BANS`` bans (the one ending soonest goes first) and
``MAX_CLAIMS`` probe results.
"""

from collections import OrderedDict

BAN_SECONDS = 600        # PROTOCOL.md section 7: 10 minutes by default
MAX_BANS = 10_000        # bans kept; past it the one ending soonest is dropped
MAX_CLAIMS = 1_000       # probe results kept, oldest out
MAX_PROBES = 4           # probes in progress at once
PROBE_SECONDS = BAN_SECONDS  # a probe's answer is trusted this long


class BanList:
    def __init__(self):
        self.bans: dict[str, tuple[float, str]] = {}  # key -> (until, reason)

    def ban(self, key: str, reason: str, now: float) -> None:
        self.bans[key] = (now + BAN_SECONDS, reason)
        while len(self.bans) > MAX_BANS:
            del self.bans[min(self.bans, key=lambda k: self.bans[k][0])]

    def is_banned(self, key: str, now: float) -> bool:
        ban = self.bans.get(key)
        if ban and ban[0] <= now:
            del self.bans[key]
            return False
        return ban is not None

    def expire(self, now: float) -> None:
        for key in [k for k, (until, _) in self.bans.items() if until <= now]:
            del self.bans[key]

    def entries(self, now: float) -> list[dict]:
        return [{"addr": key, "until": int(until), "reason": reason}
                for key, (until, reason) in self.bans.items() if until > now]

    def clear(self) -> None:
        self.bans.clear()


class ListenClaims:
    def __init__(self):
        self.probed: OrderedDict[str, tuple[float, bool]] = OrderedDict()  # addr -> (when, answered)
        self.probing: dict[str, list[tuple[str, str]]] = {}  # addr -> bans waiting: (source, reason)

    def answered(self, addr: str, now: float) -> bool | None:
        """Did something answer at ``addr`` when last probed? None: not known."""
        result = self.probed.get(addr)
        if result is None or now - result[0] > PROBE_SECONDS:
            return None
        return result[1]

    def start_probe(self, addr: str) -> bool:
        if addr in self.probing or len(self.probing) >= MAX_PROBES:
            return False
        self.probing[addr] = []
        return True

    def probe_done(self, addr: str, answered: bool, now: float) -> list[tuple[str, str]]:
        """Record a probe's answer; returns the bans that were waiting for it."""
        self.probed[addr] = (now, answered)
        self.probed.move_to_end(addr)
        while len(self.probed) > MAX_CLAIMS:
            self.probed.popitem(last=False)
        return self.probing.pop(addr, [])

    def limits(self, max_pending: int) -> list[tuple[str, int, int]]:
        return [("probe results", len(self.probed), MAX_CLAIMS),
                ("probes in progress", len(self.probing), MAX_PROBES),
                ("bans waiting for probes", sum(map(len, self.probing.values())), max_pending)]
