"""The package's layout stays one-way (docs/DESIGN.md): in budgetnas's import graph,
read with ``ast`` from every import (at module level or inside a function), there is
no cycle, a subpackage imports only the layers below it, no module takes a private
``_name`` from another, and only ``__main__.py`` imports ``cli``; torch and optuna are
imported at import time only where they are needed; every module says what it owns and
stays short."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "budgetnas"
INIT = "__init__"  # the package's own __init__.py in the graph


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_keys(package: Path) -> dict[str, Path]:
    """Module name relative to the package (``search``, ``data.sources``; ``__init__``
    for the package itself, a subpackage's __init__.py under the subpackage's name)."""
    keys = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        keys[".".join(parts) or INIT] = path
    return keys


class Imports:
    """Who imports whom inside one package: ``edges[a]`` the modules ``a`` imports;
    ``private[a]`` (module, name) for each private name ``a`` takes from another."""

    def __init__(self, package: Path):
        self.name = package.name
        self.files = module_keys(package)
        self.edges: dict[str, set[str]] = {key: set() for key in self.files}
        self.private: dict[str, list[tuple[str, str]]] = {key: [] for key in self.files}
        for key, path in self.files.items():
            self._read(key, path)

    def _known(self, dotted: str) -> str | None:
        """The module a dotted name (relative to the package) refers to, if any."""
        dotted = dotted or INIT
        while dotted not in self.files and "." in dotted:
            dotted = dotted.rsplit(".", 1)[0]
        return dotted if dotted in self.files else None

    def _base(self, key: str, node: ast.ImportFrom) -> str | None:
        """What ``from X import ...`` names, relative to the package (None: not ours)."""
        if node.level == 0:
            mod = node.module or ""
            if mod != self.name and not mod.startswith(self.name + "."):
                return None
            return mod[len(self.name) + 1:]
        here = [] if key == INIT else key.split(".")
        is_package = self.files[key].name == "__init__.py"
        pkg = here if is_package else here[:-1]
        up = node.level - 1
        if up > len(pkg):
            return None  # above the package
        pkg = pkg[:len(pkg) - up]
        return ".".join(pkg + (node.module.split(".") if node.module else []))

    def _read(self, key: str, path: Path) -> None:
        tree = ast.parse(path.read_text(), filename=str(path))
        modules_as: dict[str, str] = {}  # local name -> package module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == self.name or alias.name.startswith(self.name + "."):
                        target = self._known(alias.name[len(self.name) + 1:])
                        if target:
                            self._edge(key, target)
                            if alias.asname:
                                modules_as[alias.asname] = target
            elif isinstance(node, ast.ImportFrom):
                base = self._base(key, node)
                if base is None:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    if sub in self.files:  # from . import runner: the module itself
                        self._edge(key, sub)
                        modules_as[alias.asname or alias.name] = sub
                        if private(alias.name):
                            self._private(key, base or INIT, alias.name)
                        continue
                    target = self._known(base)
                    if target is None:
                        continue
                    self._edge(key, target)
                    if private(alias.name):
                        self._private(key, target, alias.name)
        for node in ast.walk(tree):  # runner._event_line, after 'from . import runner'
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules_as and private(node.attr)):
                self._private(key, modules_as[node.value.id], node.attr)

    def _edge(self, source: str, target: str) -> None:
        if source != target:
            self.edges[source].add(target)

    def _private(self, source: str, target: str, name: str) -> None:
        if source != target:
            self.private[source].append((target, name))

    def cycles(self) -> list[list[str]]:
        """One cycle per back edge of a depth-first walk, as [a, b, ..., a]."""
        found, state, stack = [], {}, []

        def visit(node: str) -> None:
            state[node] = "open"
            stack.append(node)
            for nxt in sorted(self.edges[node]):
                if state.get(nxt) == "open":
                    found.append(stack[stack.index(nxt):] + [nxt])
                elif nxt not in state:
                    visit(nxt)
            stack.pop()
            state[node] = "done"

        for node in sorted(self.edges):
            if node not in state:
                visit(node)
        return found


def graph() -> Imports:
    return Imports(PACKAGE)


def subpackage(module: str) -> str:
    """The top-level part a module belongs to: 'study' for study.objective, 'api' for api."""
    return module.split(".")[0]


# The subpackages, each above the ones it may import (docs/DESIGN.md): an import from a
# lower row to a higher one, or between two of one row, is a layering error.
LAYERS = (
    ("__main__",),
    ("cli",),
    ("__init__",),
    ("api",),
    ("run",),
    ("export",),
    ("results",),
    ("study",),
    ("space",),
    ("arch", "train"),
    ("data",),
    ("config",),
)
# modules that may import torch / optuna when they are imported (not only inside a
# function): everything else keeps the read-only commands, --help and counting fast
TORCH_AT_IMPORT = ("arch.build", "data.load", "data.subset", "data.augment", "train.loop", "train.graphstep",
                   "study.objective", "export")
OPTUNA_AT_IMPORT = ("study.storage", "study.fast", "study.create", "study.objective", "study.optimize")
MAX_LINES = 400


def rank(module: str) -> int:
    return next(i for i, row in enumerate(LAYERS) if subpackage(module) in row)


def test_the_walker_sees_imports_at_module_level_and_inside_functions():
    g = graph()
    assert {"cli", "cli.search", "run.engine", "run.workers", "study.objective", "study.storage", "run.runtime",
            "train.loop", "arch.kinds.conv"} <= set(g.files)
    assert "study.storage" in g.edges["study.create"]  # module level: from .storage import ...
    assert {"run.workers", "run.terminal", "study.create"} <= g.edges["cli.search"]  # inside command functions
    assert "config" in g.edges["__init__"]  # the package's own __init__: from .config import VERSION
    assert "api" in g.edges["__init__"]  # inside a function: from .api import search
    assert "arch.kinds" in g.edges["arch.kinds.conv"]  # from . import LayerKind


def test_every_module_is_in_a_layer():
    assert not [m for m in graph().files if not any(subpackage(m) in row for row in LAYERS)]


def test_the_package_has_no_import_cycle():
    cycles = [" -> ".join(c) for c in graph().cycles()]
    assert not cycles, "import cycles in budgetnas: " + "; ".join(cycles)


def test_subpackages_import_only_the_layers_below_them():
    g = graph()
    upward = sorted(f"{src} imports {dst}" for src, targets in g.edges.items() for dst in targets
                    if subpackage(src) != subpackage(dst) and rank(dst) <= rank(src))
    assert not upward, "imports against the layering (docs/DESIGN.md): " + "; ".join(upward)


def test_no_module_takes_a_private_name_from_another():
    taken = sorted({f"{src} takes {target}.{name}" for src, names in graph().private.items() for target, name in names})
    assert not taken, "private names taken from other modules: " + "; ".join(taken)


def test_only_main_imports_cli():
    importers = sorted(src for src, targets in graph().edges.items() if any(subpackage(t) == "cli" for t in targets)
                       and subpackage(src) != "cli")
    assert importers == ["__main__"], f"the cli package is imported by {importers}: only __main__.py may import it"


def module_level_imports(path: Path) -> set[str]:
    """Top-level package names imported when the module is imported (not inside a
    function, nor under ``if TYPE_CHECKING``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_torch_and_optuna_are_imported_only_where_they_are_needed():
    g = graph()
    wrong = []
    for module, path in g.files.items():
        found = module_level_imports(path)
        if "torch" in found and not module.startswith(TORCH_AT_IMPORT):
            wrong.append(f"{module} imports torch")
        if "optuna" in found and module not in OPTUNA_AT_IMPORT:
            wrong.append(f"{module} imports optuna")
    assert not wrong, "heavy imports at import time: " + "; ".join(wrong)


def test_every_module_says_what_it_owns_and_stays_short():
    for module, path in graph().files.items():
        tree = ast.parse(path.read_text())
        lines = len(path.read_text().splitlines())
        if module != "__main__":
            assert ast.get_docstring(tree), f"{module} does not say in its first lines what it owns"
        assert lines <= MAX_LINES, f"{module} has {lines} lines: split it by what it owns"


def test_the_checks_catch_cycles_and_private_names(tmp_path):
    """The checks above can fail: a made-up package with what they forbid."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import helper\n")
    (pkg / "b.py").write_text("def helper():\n    from . import c\n    return c._hidden\n")
    (pkg / "c.py").write_text("import pkg.a\nfrom pkg.sub.d import _secret\n_hidden = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "d.py").write_text("from ..a import helper as h\nfrom . import e\n_secret = 2\n")
    (pkg / "sub" / "e.py").write_text("from .. import __version__\n")
    g = Imports(pkg)
    assert g.edges["a"] == {"b"} and g.edges["b"] == {"c"} and g.edges["c"] == {"a", "sub.d"}
    assert g.edges["sub.d"] == {"a", "sub.e"} and g.edges["sub.e"] == {"__init__"}
    assert sorted(map(tuple, g.cycles())) == [("a", "b", "c", "a"), ("a", "b", "c", "sub.d", "a")]
    assert g.private["b"] == [("c", "_hidden")] and g.private["c"] == [("sub.d", "_secret")]
    assert not g.private["sub.e"]  # __version__ is no private name
