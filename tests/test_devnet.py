"""``toychain devnet``: one command starts a local network of three mining
nodes with funded demo accounts; the README's five-minute tour runs on it
line by line, as written; a payment from alice sent at node 1 is confirmed
at node 3; Ctrl-C (SIGINT) stops every node; ``up`` again on the same
directory resumes the same chain, the payment and the balances. Everything
runs as real processes, as a user would run it, with the output captured
(not a terminal) and a narrow ``COLUMNS``: every URL, address and command
must still be printed whole, on one line.
"""

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from chain.amounts import COIN
from chain.keys import DEMO_ACCOUNTS
from client.rpc import RpcClientError, rpc_call
from toychain.devnet import demo_address

from .helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
TOYCHAIN = str(ROOT / ".venv" / "bin" / "toychain")
ALICE = "toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm"
BOB = demo_address("bob")
AMOUNT = 150_000_000  # 1.5 TOY
READY = "Ctrl-C stops"


def free_base_port(count: int = 3) -> int:
    """A port P with P .. P + count - 1 all free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65000:
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no 3 consecutive free ports")


def env(password: str | None = None) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TOYCHAIN_WALLET", "TOYCHAIN_NODE", "TOYCHAIN_WALLET_PASSWORD")}
    environment["COLUMNS"] = "40"  # narrow: nothing printed may be cut or wrapped to fit it
    if password is not None:
        environment["TOYCHAIN_WALLET_PASSWORD"] = password
    return environment


def toychain(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([TOYCHAIN, *args], capture_output=True, text=True, env=env(password),
                          stdin=subprocess.DEVNULL, timeout=60)


def ok_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return json.loads(result.stdout)


def demo_wallet(directory: Path, name: str, url: str, *args: str):
    return ok_json(toychain("wallet", "--wallet", str(directory / "wallets" / f"{name}.json"),
                            "--node", url, "--json", *args, password="demo"))


class Devnet:
    """``toychain devnet up`` as a child process (in its own session so that
    clean-up can reach its nodes too), its output in a file."""

    def __init__(self, directory: Path, base_port: int, log: Path):
        self.log_path = log
        self.log = open(log, "wb")
        self.process = subprocess.Popen(
            [TOYCHAIN, "devnet", "up", "--nodes", "3", "--dir", str(directory), "--port", str(base_port)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env(),
            start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 60) -> str:
        def ready():
            assert self.process.poll() is None, (self.process.returncode, self.output())
            return READY in self.output()
        wait_until(ready, timeout, "the devnet to be ready")
        return self.output()

    def interrupt(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        self.log.close()
        return code

    def clean_up(self) -> None:
        """SIGTERM to the devnet's whole process group, then SIGKILL."""
        if not self.log.closed:
            self.log.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and group_alive(self.process.pid):
            if self.process.poll() is None:
                try:
                    self.process.wait(0.2)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.2)
        if group_alive(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(5)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes (not zombies) that mention ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def readme_tour() -> list[tuple[str, list[str]]]:
    """The README's five-minute tour: (line, the excerpt of its output shown
    in the comment lines under it)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("### A five-minute tour", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("#"):
            steps[-1][1].append(line[1:].strip())
        elif line.strip():
            steps.append((line, []))
    return steps


def line_matches(excerpt: str, line: str) -> bool:
    """``line`` holds the pieces of ``excerpt`` between its "..." in order."""
    position = 0
    for piece in (piece.strip() for piece in excerpt.split("...")):
        found = line.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def shows(excerpt: list[str], output: str) -> bool:
    """Each line of ``excerpt`` matches a line of ``output``, in order."""
    lines = iter(output.splitlines())
    return all(any(line_matches(want, line) for line in lines) for want in excerpt)


def run_readme_tour(cwd: Path, base: int) -> list[str]:
    """Run the tour as written, in ``cwd`` (which holds ``devnet/``), with the
    devnet's ports for 8331-8333; the steps that did not do what it shows."""
    environment, variables, wrong = env(), {}, []
    for line, excerpt in readme_tour():
        for i in range(3):
            line = line.replace(f"127.0.0.1:{8331 + i}", f"127.0.0.1:{base + i}")
        words = shlex.split(line, comments=True)
        if words[0] == "source":  # activates .venv: here the venv's toychain is run by its path
            continue
        if words[0] == "export":
            name, value = words[1].split("=", 1)
            environment[name] = value
            continue
        if len(words) == 1 and "=" in words[0]:
            name, value = words[0].split("=", 1)
            variables[name] = value
            continue
        words = [part for word in words
                 for part in (shlex.split(variables[word[1:]]) if word.startswith("$") else [word])]
        assert words[0] == "toychain", line
        result = subprocess.run([TOYCHAIN, *words[1:]], cwd=cwd, env=environment, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL, timeout=60)
        output = result.stdout + result.stderr
        refused = any(want.startswith("Error:") for want in excerpt)
        if (result.returncode != 0) != refused or "Traceback" in output or not shows(excerpt, output):
            wrong.append(f"{line}\n  exit {result.returncode}, printed:\n{output}\n  README shows:\n"
                         + "\n".join(excerpt))
    return wrong


def answers(url: str) -> bool:
    try:
        rpc_call(url, "getblockchaininfo", timeout=2)
    except RpcClientError:
        return False
    return True


def confirmations(url: str, txid: str) -> int:
    try:
        return rpc_call(url, "getrawtransaction", [txid], timeout=5)["confirmations"]
    except RpcClientError:
        return -1


def test_devnet_payment_across_nodes_and_resume_after_ctrl_c(tmp_path):
    directory = tmp_path / "devnet"
    base = free_base_port()
    urls = [f"http://127.0.0.1:{base + i}" for i in range(3)]
    devnets = []
    late: list[str] = []  # failures reported at the end, after the whole story ran
    try:
        # --- up: three nodes, tables of nodes and demo accounts ---------------
        first = Devnet(directory, base, tmp_path / "up1.log")
        devnets.append(first)
        output = first.wait_ready()
        assert "Toychain devnet" in output and "Demo accounts (TOY)" in output
        for i, (url, miner) in enumerate(zip(urls, ("alice", "bob", "carol")), start=1):
            row = next(line for line in output.splitlines() if f" node{i} " in line)
            assert url in row and f"127.0.0.1:{base + i - 1}" in row and miner in row, row
            assert str(directory / f"node{i}") in row, row
        for name in DEMO_ACCOUNTS:
            row = next(line for line in output.splitlines() if f" {name} " in line
                       and demo_address(name) in line)
            assert row
            assert (directory / "wallets" / f"{name}.json").stat().st_mode & 0o777 == 0o600
        alice_row = next(line for line in output.splitlines() if ALICE in line)
        assert "0.00000000" != alice_row.split("│")[3].strip()  # alice can spend
        assert f"wallet files: {directory}/wallets/NAME.json, password 'demo'" in output
        lines = output.splitlines()
        assert (f"Try: toychain wallet --wallet {directory}/wallets/alice.json --node {urls[0]} "
                f"balance   (password: demo)") in lines
        assert (f"Dashboard (open it in a browser): http://127.0.0.1:{base + 100}/" in lines
                or any(line.startswith("No dashboard: ") for line in lines)), output
        layout = json.loads((directory / "devnet.json").read_text())
        assert [(n["name"], n["port"], n["miner"]) for n in layout["nodes"]] == [
            ("node1", base, "alice"), ("node2", base + 1, "bob"), ("node3", base + 2, "carol")]

        # --- status --json: all up and connected ------------------------------
        status = ok_json(toychain("devnet", "status", "--dir", str(directory), "--json"))
        assert [(row["node"], row["url"], row["up"]) for row in status] == [
            ("node1", urls[0], True), ("node2", urls[1], True), ("node3", urls[2], True)]
        for row in status:
            assert row["height"] >= 1 and len(row["tip"]) == 64, row
            assert isinstance(row["mempool"], int) and row["mempool"] >= 0
        # checked at the end, so that the rest of the story still runs when this fails
        isolated = [row["node"] for row in status if row["peers"] < 1]
        if isolated:
            late.append(f"`devnet status` right after `up` announced the devnet ready shows "
                        f"{isolated} with no peers: {status}")
        # --json before the subcommand too; the table for people keeps every URL whole
        again = ok_json(toychain("devnet", "--json", "status", "--dir", str(directory)))
        assert [(row["node"], row["url"]) for row in again] == [(row["node"], row["url"]) for row in status]
        table = toychain("devnet", "status", "--dir", str(directory))
        assert table.returncode == 0, table.stderr
        for i, url in enumerate(urls, start=1):
            assert any(f" node{i} " in line and f" {url} " in line for line in table.stdout.splitlines()), \
                table.stdout

        # --- alice pays bob 1.5 TOY at node 1; node 3 sees it confirmed ---------
        alice_before = demo_wallet(directory, "alice", urls[0], "balance")
        assert alice_before["confirmed"] >= 2 * COIN
        sent = demo_wallet(directory, "alice", urls[0], "send", BOB, "1.5", "--yes")
        txid = sent["txid"]
        assert sent["amount"] == AMOUNT and sent["to"] == BOB and sent["fee"] == 199
        wait_until(lambda: confirmations(urls[2], txid) >= 1, 60, "the payment confirmed at node 3")
        bob_history = demo_wallet(directory, "bob", urls[2], "history")
        entry = [e for e in bob_history if e["txid"] == txid]
        assert len(entry) == 1 and entry[0]["delta"] == AMOUNT and isinstance(entry[0]["height"], int)
        bob_coins = demo_wallet(directory, "bob", urls[2], "utxos")
        assert [(c["index"], c["amount"], c["address"], c["coinbase"]) for c in bob_coins
                if c["txid"] == txid] == [(0, AMOUNT, BOB, False)]
        alice_history = demo_wallet(directory, "alice", urls[2], "history")
        assert [e["delta"] for e in alice_history if e["txid"] == txid] == [-(AMOUNT + 199)]

        # --- the README's five-minute tour, line by line ------------------------
        wrong = run_readme_tour(tmp_path, base)
        assert not wrong, "README tour steps that are not true:\n\n" + "\n\n".join(wrong)
        rejects = rpc_call(urls[0], "getrecentrejects")
        assert (rejects[0]["kind"], rejects[0]["reject_reason"], rejects[0]["source"]) == (
            "tx", "bad-txns-in-belowout", "rpc"), rejects

        # --- record, then Ctrl-C ------------------------------------------------
        wait_until(lambda: confirmations(urls[2], txid) >= 2, 60, "a second confirmation at node 3")
        height = rpc_call(urls[2], "getblockchaininfo")["height"]
        alice_balance = demo_wallet(directory, "alice", urls[0], "balance")
        alice_spendable = alice_balance["confirmed"] + alice_balance["unconfirmed"]
        bob_balance = demo_wallet(directory, "bob", urls[2], "balance")
        assert bob_balance["confirmed"] >= AMOUNT
        wallet_bytes = {name: (directory / "wallets" / f"{name}.json").read_bytes()
                        for name in DEMO_ACCOUNTS}
        assert first.interrupt() == 0, first.output()
        assert "Stopped. Run `toychain devnet up` again to resume." in first.output()
        assert [url for url in urls if answers(url)] == []
        wait_until(lambda: not processes_mentioning(str(directory)), 20,
                   "every node process of the devnet to exit")
        unclean = [f"node{i}" for i in (1, 2, 3)
                   if "node stopped cleanly" not in (directory / f"node{i}" / "node.log").read_text()]
        if unclean:
            late.append(f"{unclean} did not stop cleanly on SIGTERM (no 'node stopped cleanly' in "
                        f"node.log: killed by the devnet after 15 s)")
        status = ok_json(toychain("devnet", "status", "--dir", str(directory), "--json"))
        assert [row["up"] for row in status] == [False, False, False]

        # --- up again: the same chain, payment and balances --------------------
        second = Devnet(directory, base, tmp_path / "up2.log")
        devnets.append(second)
        second.wait_ready()
        for url in urls:
            assert rpc_call(url, "getblockchaininfo")["height"] >= height
        assert confirmations(urls[2], txid) >= 1
        assert confirmations(urls[0], txid) >= 1
        bob_history = demo_wallet(directory, "bob", urls[2], "history")
        assert [e["delta"] for e in bob_history if e["txid"] == txid and e["height"] is not None] \
            == [AMOUNT]
        bob_coins = demo_wallet(directory, "bob", urls[2], "utxos")
        assert [(c["index"], c["amount"]) for c in bob_coins if c["txid"] == txid] == [(0, AMOUNT)]
        assert demo_wallet(directory, "bob", urls[2], "balance")["total"] >= bob_balance["confirmed"]
        alice_now = demo_wallet(directory, "alice", urls[0], "balance")
        assert alice_now["confirmed"] + alice_now["unconfirmed"] >= alice_spendable
        assert {name: (directory / "wallets" / f"{name}.json").read_bytes()
                for name in DEMO_ACCOUNTS} == wallet_bytes  # demo wallets kept, not rewritten
        assert json.loads((directory / "devnet.json").read_text()) == layout
        assert second.interrupt() == 0, second.output()
        assert [url for url in urls if answers(url)] == []
        assert late == []
    finally:
        for devnet in devnets:
            devnet.clean_up()
