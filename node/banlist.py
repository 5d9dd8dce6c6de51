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
really listens there. So that no third party can get an honest node
banned by claiming its port and misbehaving, a claim becomes the ban key
only when it is *believed* (``ListenClaims``):

* **proven**: when we dial an address we send, as our version nonce, a
  fresh random *challenge*, and remember it for that address; a node that
  received it remembers it too, for the address the dialler claimed, and
  sends it back as its own nonce when it dials that address. An inbound
  peer claiming address L and sending the challenge we sent to L must be
  the process that answered at L: only it saw the challenge (a nonce a
  peer sends on its inbound connections, our own included, is public and
  proves nothing; that is why the challenge is per dial);
* **or harmless**: nothing else answers at L. On the version of an
  inbound peer with an unproven claim the node *probes* L (connects and
  hangs up at once; at most ``MAX_PROBES`` at a time, results kept
  ``PROBE_SECONDS``). If nothing answers there, a ban on L hurts nobody
  else, and it is believed; if something answers (an outbound peer of ours
  included), it is not: the ban falls on the peer's source "host:port".

A peer punished while its probe is still running is disconnected at once;
its ban waits for the probe's answer. Our own nonce, sent when we answer
an inbound connection, still detects a connection to ourselves.

Bounded: ``MAX_BANS`` bans (the one ending soonest goes first) and
``MAX_CLAIMS`` remembered challenges, echoes and probe results each.
"""

from collections import OrderedDict

BAN_SECONDS = 600        # PROTOCOL.md section 7: 10 minutes by default
MAX_BANS = 10_000        # bans kept; past it the one ending soonest is dropped
MAX_CLAIMS = 1_000       # challenges, echoes and probe results kept (each), oldest out
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


def _remember(table: OrderedDict, key, value) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_CLAIMS:
        table.popitem(last=False)


class ListenClaims:
    def __init__(self, rng):
        self.rng = rng
        self.challenges: OrderedDict[str, int] = OrderedDict()  # addr we dialled -> nonce we sent
        self.echoes: OrderedDict[str, int] = OrderedDict()      # addr a dialler claimed -> its nonce
        self.probed: OrderedDict[str, tuple[float, bool]] = OrderedDict()  # addr -> (when, answered)
        self.probing: dict[str, list[tuple[str, str]]] = {}  # addr -> bans waiting: (source, reason)

    def nonce_for_dial(self, addr: str) -> int:
        """The nonce to send when dialling ``addr``: what the node there sent when it
        dialled us (proving we are who we claim), else a fresh challenge."""
        nonce = self.echoes.get(addr)
        if nonce is None:
            nonce = self.rng.getrandbits(63)
        _remember(self.challenges, addr, nonce)
        return nonce

    def heard(self, claim: str, nonce: int) -> bool:
        """An inbound peer claims ``claim`` with ``nonce``: remember it as the echo
        to send when we dial ``claim``; True if it proves the claim."""
        _remember(self.echoes, claim, nonce)
        return self.challenges.get(claim) == nonce

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
        _remember(self.probed, addr, (now, answered))
        return self.probing.pop(addr, [])

    def limits(self, max_pending: int) -> list[tuple[str, int, int]]:
        return [("listen challenges", len(self.challenges), MAX_CLAIMS),
                ("listen echoes", len(self.echoes), MAX_CLAIMS),
                ("probe results", len(self.probed), MAX_CLAIMS),
                ("probes in progress", len(self.probing), MAX_PROBES),
                ("bans waiting for probes", sum(map(len, self.probing.values())), max_pending)]
