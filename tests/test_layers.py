"""The layers: no package imports one above it.

    toychain                     the command, the devnet, its dashboard server, the lab
    wallet, demos                clients of a node: reach it only over JSON-RPC
    sim                          the network simulator: many nodes in one process
    client   display   node      the RPC client; how commands print; the daemon
    chain                        the consensus core

Every module of every package we ship is parsed with ``ast`` (never
imported, so nothing runs) and each ``import`` in it, function bodies
included, is resolved to the top-level package it names; relative imports
are resolved against the module's own package. An import of one of our
packages that ``ALLOWED`` does not list is a violation, reported with its
file and line. The node also holds no signing code: every node serves the
dashboard page, and signing with demo keys belongs to the devnet's
dashboard server above it.
"""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ALLOWED = {  # package -> the packages of ours it may import
    "chain": set(),
    "node": {"chain"},
    "client": set(),
    "display": set(),
    "wallet": {"chain", "client", "display"},
    "demos": {"chain", "client", "display"},
    "sim": {"chain", "node"},
    "toychain": {"chain", "node", "client", "display", "wallet", "demos"},
}
OURS = set(ALLOWED) | {"tests"}
SIGNING = {("chain.mining", "sign_tx"), ("chain.keys", "sign")}


def imports(source: str, module: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, absolute module name, names taken from it) for every import in
    ``source``, the code of module ``module`` (its file's dotted path, e.g.
    ``node.cli`` or ``node.__init__``)."""
    found = []
    package = module.split(".")[:-1]
    for item in ast.walk(ast.parse(source)):
        if isinstance(item, ast.Import):
            found += [(item.lineno, alias.name, ()) for alias in item.names]
        elif isinstance(item, ast.ImportFrom):
            base = package[:len(package) - item.level + 1] if item.level else []
            name = ".".join(base + ([item.module] if item.module else []))
            found.append((item.lineno, name, tuple(alias.name for alias in item.names)))
    return found


def modules(package: str) -> list[tuple[Path, str]]:
    """(path, dotted module name) of every module of ``package``."""
    paths = sorted((ROOT / package).rglob("*.py"))
    return [(path, ".".join(path.relative_to(ROOT).with_suffix("").parts)) for path in paths]


def package_imports(package: str) -> list[tuple[str, int, str, tuple[str, ...]]]:
    return [(str(path.relative_to(ROOT)), line, name, names)
            for path, module in modules(package)
            for line, name, names in imports(path.read_text(), module)]


def test_every_shipped_package_has_its_layer():
    """A new package cannot escape the check; the command is the top layer's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(project["tool"]["setuptools"]["packages"]) == set(ALLOWED)
    assert project["project"]["scripts"]["toychain"] == "toychain.cli:main"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_package_imports_one_above_it(package):
    found = package_imports(package)
    assert modules(package) and found, f"{package}/ has no modules or no imports: nothing was checked"
    wrong = [f"{path}:{line} imports {name}" for path, line, name, _ in found
             if name.split(".")[0] in OURS - {package} - ALLOWED[package]]
    assert not wrong, f"{package}/ may import only {sorted(ALLOWED[package]) or 'none of ours'}:\n" + \
        "\n".join(wrong)


def test_no_node_module_signs():
    """What every node serves holds no key-signing code (the devnet's
    dashboard server signs with demo keys; a node never signs anything)."""
    signing = [f"{path}:{line} imports {name}.{taken}" for path, line, name, names in package_imports("node")
               for taken in names if (name, taken) in SIGNING]
    assert not signing, "\n".join(signing)


def test_imports_are_resolved_from_nested_code_and_relative_names():
    source = ("import client.rpc\n"
              "from . import keystore\n"
              "from .builder import build\n"
              "from ..node import server\n"
              "def later():\n"
              "    from demos.catalog import ORDER\n")
    assert imports(source, "wallet.cli") == [
        (1, "client.rpc", ()), (2, "wallet", ("keystore",)), (3, "wallet.builder", ("build",)),
        (4, "node", ("server",)), (6, "demos.catalog", ("ORDER",))]
    assert imports("from .cli import main\n", "toychain.__init__") == [(1, "toychain.cli", ("main",))]
