"""The package's layering: every import of a netadapt module points down (``docs/design.md``).

Each module of ``src/netadapt`` is read with :mod:`ast`; every import in it counts -- at module
level, inside functions (lazy imports), under ``if TYPE_CHECKING:`` -- since a lazy import that
runs back up a layer is still a cycle, only one that fails later.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import netadapt

SRC = Path(netadapt.__file__).parent

# The layers, lowest first: a module may import its own layer and the layers below it, never one
# above.  A name is a package (``model``) or a top-level module (``errors``) of netadapt.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("io", "lock", "progress", "version", "layout", "allocator"),  # files, locks, progress lines, the run folder, malloc
    ("config",),  # typed configs from YAML and --set
    ("arch",),  # the architecture value and its search space
    ("model",),  # super-network, zoo, model registry, extraction
    ("trace",),  # super-networks of a user's own torch.fx-traced module
    ("data",),  # images (and depth maps), augmentation, the held-out split
    ("export",),  # a network as ONNX / TorchScript / torch.export bytes and files
    ("resources",),  # MACs, latency, lookup tables, a user's command (measures exported networks)
    ("depth",),  # depth loss and metrics, FastDepth's encoder initialisation
    ("evaluate",),  # the metrics of a network over a loader
    ("tasks",),  # classification / depth: loss, metrics, score direction
    ("train",),  # training the super-network and the discovered network
    ("search",),  # the optimizer, sample evaluation, the search run folder
    ("report",),  # report.md from a run folder
    ("pipeline",),  # ``netadapt run``: every stage in order
    ("cli",),  # the command line; see _CLI_MODULES
)
# The command line sits on top: netadapt/__init__ (the public API gathers every layer), the
# ``netadapt`` command, its subcommand modules (each package's ``cli.py``), the generated docs and
# the flags derived from config fields (config_flags reads the fields' comments from config_doc).
_CLI_MODULES = {"__init__", "__main__", "cli", "config_doc", "config_flags"}
_RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    """The layer name of a netadapt module (``netadapt.model.zoo`` -> ``model``)."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in _CLI_MODULES or parts[-1] in ("cli", "__main__"):
        return "cli"
    return parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported netadapt module) of every import in ``path``, lazy ones included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return [(line, name) for line, name in found if name == "netadapt" or name.startswith("netadapt.")]


MODULES = sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer():
    names = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in MODULES}
    assert names - _CLI_MODULES - {"__init__"} <= set(_RANK), "place the new package in LAYERS (and docs/design.md)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path):
    importer = _layer(_module_name(path))
    upward = [
        f"{path.relative_to(SRC)}:{line} imports {name} (layer {_layer(name)!r} is above {importer!r})"
        for line, name in _imports(path)
        if _RANK[_layer(name)] > _RANK[importer]
    ]
    assert not upward, "\n".join(upward)


def test_importing_netadapt_leaves_depth_unloaded():
    code = "import sys, netadapt; print(sorted(m for m in sys.modules if m.startswith('netadapt.depth')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_public_name_resolves():
    """Every name of ``netadapt.__all__`` is an attribute (the lazy ones load on first use) and
    ``dir(netadapt)`` lists it."""
    for name in netadapt.__all__:
        assert getattr(netadapt, name) is not None, name
    assert set(netadapt.__all__) <= set(dir(netadapt))


def test_mcd_is_the_search_function_and_search_a_plain_package():
    """``netadapt.mcd`` is the optimizer (``netadapt.search.search``), loaded on first use;
    ``netadapt.search`` is only the subpackage, not callable."""
    code = (
        "import sys, types, netadapt\n"
        "assert 'netadapt.search' not in sys.modules\n"
        "mcd = netadapt.mcd\n"
        "from netadapt.search import search\n"
        "from netadapt.search.driver import search as driver_search\n"
        "assert mcd is search is driver_search and mcd.__name__ == 'search'\n"
        "assert type(netadapt.search) is types.ModuleType and not callable(netadapt.search)\n"
        "assert netadapt.search is sys.modules['netadapt.search'] and callable(netadapt.search.run_search)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
