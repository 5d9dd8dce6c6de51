"""A private devnet for one demo run: three node processes in a temporary
directory, started *without* ``--mine`` so that blocks appear only when the
demo asks for them (``generatetoaddress`` with the node's cookie).

The nodes are ordinary ``toychain node --network devnet`` processes (run as
``python -m node``) on free ports of 127.0.0.1. They are linked with one-shot
connections (``addnode HOST:PORT onetry``), not ``--peer``: a ``--peer``
link is redialled forever, so the reorg demo could not cut node 3 off. Every node is linked to every
other, so a transaction reaches all of them directly.

Stopping sends SIGTERM (a clean shutdown) and kills a node that is still
running after 15 s.
"""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from client.rpc import RpcClientError, rpc_call

READY_SECONDS = 60.0
STOP_SECONDS = 15.0
START_RETRIES = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalNode:
    def __init__(self, name: str, datadir: Path):
        self.name = name
        self.datadir = datadir
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.datadir / "node.log"

    def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        cookie = self.datadir / ".cookie"
        cookie.unlink(missing_ok=True)
        self.port = free_port()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(  # cwd: no stray "node" package of the user's shadows ours
            [sys.executable, "-m", "node", "--network", "devnet",
             "--datadir", str(self.datadir.resolve()), "--port", str(self.port)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.datadir)
        log.close()

    def log_tail(self) -> str:
        """The last line of the node's log (the directory may be gone after the demo)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else "no log"

    def token(self) -> str | None:
        try:
            return (self.datadir / ".cookie").read_text().strip()
        except OSError:
            return None

    def ready(self) -> bool:
        if self.token() is None:
            return False
        try:
            rpc_call(self.url, "getblockchaininfo", timeout=2)
            return True
        except RpcClientError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)


class LocalDevnet:
    """``with LocalDevnet(directory) as net:`` three linked nodes, stopped on exit."""

    def __init__(self, directory: Path, count: int = 3):
        self.directory = Path(directory)
        self.nodes = [LocalNode(f"node{i + 1}", self.directory / f"node{i + 1}") for i in range(count)]

    def __enter__(self) -> "LocalDevnet":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + READY_SECONDS
        pending = list(self.nodes)
        restarts = 0
        while pending:
            for node in list(pending):
                if node.process.poll() is not None:
                    if restarts < START_RETRIES:  # most likely its port was taken meanwhile
                        restarts += 1
                        node.start()
                        continue
                    raise RuntimeError(f"{node.name} exited (code {node.process.returncode}): "
                                       f"{node.log_tail()}")
                if node.ready():
                    pending.remove(node)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"{pending[0].name} did not start within {READY_SECONDS:.0f} s: "
                                   f"{pending[0].log_tail()}")
            time.sleep(0.05)
        for i, node in enumerate(self.nodes):
            for other in self.nodes[:i]:
                rpc_call(node.url, "addnode", [other.addr, "onetry"], node.token())

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        deadline = time.monotonic() + STOP_SECONDS
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
