"""A datadir knows its network (chain/chainstate.py, chain/storage.py, node/cli.py).

The file records the network name and genesis hash when it is created;
opening it for another network is refused by the chain state with
``WrongNetwork``, and by ``toychain node`` with one sentence naming both
networks and the datadir, and exit status 1. Files from before the network
was recorded are judged by their genesis block.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from chain.chainstate import ChainState, WrongNetwork
from chain.params import DEVNET, REGTEST
from chain.storage import Store

TOYCHAIN = str(Path(sys.executable).parent / "toychain")


def create(path: Path, net) -> None:
    ChainState(net, Store(path)).close()


def test_the_file_records_its_network_and_genesis(tmp_path):
    path = tmp_path / "chain.sqlite"
    create(path, DEVNET)
    store = Store(path)
    try:
        assert store.get_meta("network") == "devnet"
        assert store.get_meta("genesis") == DEVNET.genesis.hash
    finally:
        store.close()
    ChainState(DEVNET, Store(path)).close()  # its own network opens it


@pytest.mark.parametrize("made, opened", [(DEVNET, REGTEST), (REGTEST, DEVNET)])
def test_opening_a_file_of_another_network_is_refused(tmp_path, made, opened):
    path = tmp_path / "chain.sqlite"
    create(path, made)
    store = Store(path)
    with pytest.raises(WrongNetwork) as caught:
        ChainState(opened, store)
    assert (caught.value.stored, caught.value.wanted) == (made.name, opened.name)
    assert str(caught.value) == f"{path} holds the chain of {made.name}, not of {opened.name}"
    assert store.load_index()[0][1:] == (0, 1, 1, None)  # nothing was written
    assert store.get_meta("network") == made.name
    store.close()


def test_a_file_from_before_the_network_was_recorded_is_judged_by_its_genesis(tmp_path):
    path = tmp_path / "chain.sqlite"
    create(path, DEVNET)
    store = Store(path)
    store.db.execute("DELETE FROM meta WHERE key IN ('network', 'genesis')")
    store.close()
    with pytest.raises(WrongNetwork) as caught:
        ChainState(REGTEST, Store(path))
    assert (caught.value.stored, caught.value.wanted) == ("devnet", "regtest")
    ChainState(DEVNET, Store(path)).close()


def test_toychain_node_refuses_another_networks_datadir_in_one_sentence(tmp_path):
    datadir = tmp_path / "data"
    datadir.mkdir()
    create(datadir / "chain.sqlite", DEVNET)
    result = subprocess.run([TOYCHAIN, "node", "--network", "regtest", "--datadir", str(datadir),
                             "--port", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [(
        f"Error: cannot start the node: datadir {datadir} holds the chain of devnet, not of "
        f"regtest; start it with its own --network, or use another --datadir")]
    assert "Traceback" not in result.stderr
    assert not (datadir / ".cookie").exists()  # it never started
