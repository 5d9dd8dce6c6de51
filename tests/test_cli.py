"""The ``toychain`` command (toychain/cli.py, node/cli.py) run for real, as a
subprocess: a node on an explicit free port, ``toychain rpc`` against it
(admin methods need --datadir for the cookie; ``--json`` is never sent to
the node as a parameter), clear one-line errors without tracebacks, usage
errors for bad options, a clean stop on SIGTERM and a restart that resumes
the same chain from the same data directory.
"""

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from client.rpc import RpcClientError, rpc_call

from .nodes import address, run, wait_for

TOYCHAIN = str(Path(sys.executable).parent / "toychain")
GENESIS_HASH = "430b418b4179c472266f3439c14619ff916b3092486af8dbc8bb4997ad9a22c5"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toychain(*args, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([TOYCHAIN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


class RunningNode:
    """``toychain node`` in the background, its log in a file."""

    def __init__(self, datadir: Path, log: Path, *extra):
        self.datadir = datadir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen([TOYCHAIN, "node", "--datadir", str(datadir),
                                      "--port", str(self.port), *extra],
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            return True   # died: let the caller's assertion say so
        try:
            rpc_call(self.url, "getbestblockhash", timeout=2)
            return True
        except RpcClientError:
            return False

    def wait_ready(self, timeout: float = 20) -> None:
        run(wait_for(self.answers, timeout, f"the node on port {self.port} to answer"))
        assert self.proc.poll() is None, self.log()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def wait_exit(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def test_node_rpc_sigterm_and_restart(tmp_path):
    datadir = tmp_path / "data"
    node = RunningNode(datadir, tmp_path / "node1.log")
    try:
        node.wait_ready()
        result = toychain("rpc", "--node", node.url, "getblockchaininfo")
        assert result.returncode == 0, result.stderr
        info = json.loads(result.stdout)
        assert info["network"] == "regtest" and info["height"] == 0
        assert info["best_block_hash"] == GENESIS_HASH and info["pow_limit_bits"] == "207fffff"
        assert info["supply"] == 50 * 100_000_000
        # --json, a habit from the other commands, is accepted anywhere, never sent as a parameter
        for args in (["getblockchaininfo", "--json"], ["--json", "getblockchaininfo"]):
            result = toychain("rpc", "--node", node.url, *args)
            assert (result.returncode, json.loads(result.stdout)) == (0, info), result.stderr

        cookie = (datadir / ".cookie").read_text()
        assert re.fullmatch(r"[0-9a-f]{64}", cookie)
        assert (datadir / ".cookie").stat().st_mode & 0o777 == 0o600

        # An admin method without --datadir: a clear refusal, nothing mined.
        result = toychain("rpc", "--node", node.url, "generatetoaddress", 1, address("bob"))
        assert result.returncode == 1
        assert result.stderr.strip() == ("Error: generatetoaddress is an admin method: pass "
                                          "--datadir so the cookie can be read")
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert rpc_call(node.url, "getblockchaininfo")["height"] == 0

        result = toychain("rpc", "--node", node.url, "--datadir", datadir,
                          "generatetoaddress", 3, address("bob"))
        assert result.returncode == 0, result.stderr
        hashes = json.loads(result.stdout)
        assert len(hashes) == 3 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)
        result = toychain("rpc", "--node", node.url, "getbestblockhash")
        assert (result.returncode, json.loads(result.stdout)) == (0, hashes[-1])
        result = toychain("rpc", "--node", node.url, "getblockhash", 2)
        assert (result.returncode, json.loads(result.stdout)) == (0, hashes[1])

        # An RPC error: one line with the node's message, exit 1.
        result = toychain("rpc", "--node", node.url, "getblockhash", 9)
        assert result.returncode == 1
        assert result.stderr.strip() == "Error: block height 9 out of range [0, 3]"
        assert "Traceback" not in result.stderr
        result = toychain("rpc", "--node", node.url, "getblockcount")
        assert result.returncode == 1
        assert result.stderr.strip() == "Error: method 'getblockcount' not found"
        result = toychain("rpc", "--node", node.url, "sendrawtransaction", "nothex")
        assert result.returncode == 1 and result.stderr.startswith("Error: bad-encoding: ")
        assert "Traceback" not in result.stderr

        node.proc.send_signal(signal.SIGTERM)
        assert node.wait_exit() == 0, node.log()
        log = node.log_path.read_text()
        assert "node stopped cleanly at height 3" in log
        assert "Traceback" not in log
    finally:
        node.kill()

    # Restart from the same data directory: same chain, new cookie.
    again = RunningNode(datadir, tmp_path / "node2.log")
    try:
        again.wait_ready()
        info = rpc_call(again.url, "getblockchaininfo")
        assert (info["height"], info["best_block_hash"]) == (3, hashes[-1])
        assert info["supply"] == 4 * 50 * 100_000_000
        new_cookie = (datadir / ".cookie").read_text()
        assert re.fullmatch(r"[0-9a-f]{64}", new_cookie) and new_cookie != cookie
        # The old cookie no longer opens admin methods.
        try:
            rpc_call(again.url, "listbanned", token=cookie)
            raise AssertionError("the old cookie was accepted")
        except RpcClientError as error:
            assert "admin method" in str(error)
        # The stop RPC through the CLI ends the node cleanly too.
        result = toychain("rpc", "--node", again.url, "--datadir", datadir, "stop")
        assert (result.returncode, result.stdout.strip()) == (0, "null"), result.stderr
        assert again.wait_exit() == 0, again.log()
        assert "node stopped cleanly at height 3" in again.log_path.read_text()
    finally:
        again.kill()


def test_rpc_to_an_unreachable_node_is_a_clear_error(tmp_path):
    result = toychain("rpc", "--node", "http://127.0.0.1:1", "getblockchaininfo")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot reach a node at http://127.0.0.1:1: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    # An unreadable cookie directory is a clear error as well.
    result = toychain("rpc", "--node", "http://127.0.0.1:1", "--datadir", tmp_path / "nowhere",
                      "stop")
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot read the cookie in {tmp_path / 'nowhere'}: ")
    assert "Traceback" not in result.stderr


def test_bad_options_are_usage_errors(tmp_path):
    datadir = tmp_path / "data"
    result = toychain("node", "--datadir", datadir, "--port", free_port(),
                      "--miner-address", "toy1qqqq", "--automine", 1)
    assert result.returncode == 2
    assert ("Error: Invalid value for --miner-address: address 'toy1qqqq' has a bad checksum"
            in result.stderr)
    assert "Traceback" not in result.stderr
    # A valid address in the wrong case mix is refused too (a typo must never lose coins).
    mixed = address("bob")[:10] + address("bob")[10:].upper()
    result = toychain("node", "--datadir", datadir, "--miner-address", mixed)
    assert result.returncode == 2 and "Invalid value for --miner-address" in result.stderr
    result = toychain("node", "--datadir", datadir, "--automine", 1)
    assert result.returncode == 2
    assert "Error: --mine and --automine need --miner-address" in result.stderr
    result = toychain("node", "--datadir", datadir, "--peer", "nonsense")
    assert result.returncode == 2
    assert "Invalid value for --peer: 'nonsense' is not HOST:PORT" in result.stderr
    result = toychain("node", "--datadir", datadir, "--port", 70000)
    assert result.returncode == 2 and "Invalid value for '--port'" in result.stderr
    result = toychain("node", "--port", 1)
    assert result.returncode == 2 and "Missing option '--datadir'" in result.stderr
    assert not datadir.exists()   # no usage error started a node


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = toychain("node", "--datadir", tmp_path / "data", "--port", port)
    assert result.returncode == 1
    assert "Error: cannot start the node: " in result.stderr
    assert "Traceback" not in result.stderr
