"""The package's layering (docs/architecture.md), read from the source: the front ends
are siblings (none imports another's modules), the library imports no front end, and
the modules imported at load time form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "arkouda_k8s"

# Each front end with the modules that are its own parts: the CLI's parser and its
# subcommands `doctor` and `run`; the notebook's settings and options, error policy, %%arkouda cell, displays
# and its link to the Jupyter server extension.
FRONT_ENDS = {
    "cli": {"cli", "cli_parser", "doctor", "runner"},
    "notebook": {
        "magics",
        "magic_options",
        "magic_errors",
        "magic_cells",
        "widgets",
        "jupyter_link",
    },
    "jupyter server": {"jupyter_extension"},
}


def _modules(sandbox: bool = False) -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "sandbox" and not sandbox:  # the test world, layered on its own
            continue
        name = ".".join(p for p in parts if p != "__init__")
        out[name] = path
    return out


MODULES = _modules()
# The sandbox too: the test world is below every front end (it imports none of them).
EVERY_MODULE = _modules(sandbox=True)


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(imported at load time, imported inside a function) of the package's modules."""
    path = EVERY_MODULE[name]
    return _imports_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")


def _imports_in(source: str, name: str, is_package: bool) -> tuple[set[str], set[str]]:
    """What ``source``, the text of module ``name``, imports of the package."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    if name == "":
        package = []
    top: set[str] = set()
    lazy: set[str] = set()
    tree = ast.parse(source)
    in_type_checking = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            in_type_checking.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in in_type_checking:
            continue
        found: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("arkouda_k8s"):
                target = node.module.removeprefix("arkouda_k8s").lstrip(".")
            else:
                continue
            found = [target] + [f"{target}.{a.name}".lstrip(".") for a in node.names]
        elif isinstance(node, ast.Import):
            found = [
                a.name.removeprefix("arkouda_k8s").lstrip(".")
                for a in node.names
                if a.name.startswith("arkouda_k8s")
            ]
        for target in found:
            if target in EVERY_MODULE and target != name:
                (top if node.col_offset == 0 else lazy).add(target)
    return top, lazy


def _front_end_of(name: str) -> str | None:
    return next((fe for fe, mods in FRONT_ENDS.items() if name in mods), None)


def _crossings(imports: dict[str, set[str]]) -> list[str]:
    """Each import of a front end's module by another front end or by the library."""
    crossings = []
    for name, targets in imports.items():
        mine = _front_end_of(name)
        for target in targets:
            theirs = _front_end_of(target)
            if theirs is not None and theirs != mine:
                crossings.append(f"{name or '__init__'} -> {target} ({theirs})")
    # the package's own hooks (`%load_ext arkouda_k8s`, the server extension's entry
    # point) name the front end they start: that is their job
    return sorted(c for c in crossings if not c.startswith("__init__ ->"))


def _all_imports(name: str, source: str | None = None) -> set[str]:
    path = EVERY_MODULE[name]
    if source is None:
        source = path.read_text(encoding="utf-8")
    top, lazy = _imports_in(source, name, path.name == "__init__.py")
    return top | lazy


def test_front_ends_are_siblings_and_the_library_imports_none():
    assert _crossings({name: _all_imports(name) for name in EVERY_MODULE}) == []


def test_a_sideways_import_is_caught():
    """The check above fails on an import planted in a front end, in the library or in
    the sandbox, at load time or inside a function (else it could pass empty)."""
    planted = {
        "magics": "def f():\n    from .cli import main\n",  # notebook -> CLI
        "cli": "from . import jupyter_extension\n",  # CLI -> Jupyter server
        "runner": "from .widgets import StatusCard\n",  # CLI's run -> notebook
        "status": "from .magics import ArkoudaMagics\n",  # library -> notebook
        "sandbox.__main__": "from ..cli import build_parser\n",  # test world -> CLI
    }
    imports = {name: _all_imports(name) for name in EVERY_MODULE}
    for name, line in planted.items():
        source = EVERY_MODULE[name].read_text(encoding="utf-8") + line
        imports[name] = _all_imports(name, source)
    assert _crossings(imports) == [
        "cli -> jupyter_extension (jupyter server)",
        "magics -> cli (cli)",
        "runner -> widgets (notebook)",
        "sandbox.__main__ -> cli (cli)",
        "status -> magics (notebook)",
    ]


def test_no_import_cycle_at_load_time():
    graph = {name: _imports(name)[0] for name in MODULES}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in done:
                visit(target, path + [target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_the_checks_see_the_imports():
    """The reader finds what a module really imports (else the checks above pass empty)."""
    top, lazy = _imports("cli")
    assert "options" in top and "errors" in top
    assert "runner" in lazy and "cluster" in lazy
    assert "tunnel.supervisor" in _imports("tunnel")[0]
