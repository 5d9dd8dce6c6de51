"""What the node asks its shell to do: the only way the state machines reach the world.

The node (``node.py``) and its parts never touch a socket, a timer or the
event bus. Each entry point (a frame arrived, a connection opened, a second
passed, an RPC call) changes their state and leaves *actions* in the node's
outbox; the shell (``server.py`` for real sockets, ``sim/`` for the
simulator) takes them with ``Node.take_actions()`` and carries them out in
order:

    Send(peer, text)       write one text frame to that peer
    Close(peer, reason)    close that connection (the node already forgot it)
    Dial(addr)             open an outbound connection to "host:port"
    Publish(event, fields) push an event to the ``/events`` subscribers
    Stop()                 begin a clean shutdown (the ``stop`` RPC)

Because actions are plain values, a test can read exactly what a node
decided, and the simulator can replay a run frame by frame.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Send:
    peer: int
    text: str


@dataclass(frozen=True, slots=True)
class Close:
    peer: int
    reason: str


@dataclass(frozen=True, slots=True)
class Dial:
    addr: str


@dataclass(frozen=True, slots=True)
class Publish:
    event: str
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Action = Send | Close | Dial | Publish | Stop
