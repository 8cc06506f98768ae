"""The package's layering (docs/architecture.md), read from the source: the front ends
are siblings (none imports another's modules), the library imports no front end, and
the modules imported at load time form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "arkouda_k8s"

# Each front end with the modules that are its own parts: the CLI's subcommands `doctor`
# and `run`; the notebook's displays and its link to the Jupyter server extension.
FRONT_ENDS = {
    "cli": {"cli", "doctor", "runner"},
    "notebook": {"magics", "widgets", "jupyter_link"},
    "jupyter server": {"jupyter_extension"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "sandbox":  # the test world, layered on its own
            continue
        name = ".".join(p for p in parts if p != "__init__")
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(imported at load time, imported inside a function) of the package's modules."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "":
        package = []
    top: set[str] = set()
    lazy: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
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
            if target in MODULES and target != name:
                (top if node.col_offset == 0 else lazy).add(target)
    return top, lazy


def _front_end_of(name: str) -> str | None:
    return next((fe for fe, mods in FRONT_ENDS.items() if name in mods), None)


def test_front_ends_are_siblings_and_the_library_imports_none():
    crossings = []
    for name in MODULES:
        top, lazy = _imports(name)
        mine = _front_end_of(name)
        for target in top | lazy:
            theirs = _front_end_of(target)
            if theirs is not None and theirs != mine:
                crossings.append(f"{name or '__init__'} -> {target} ({theirs})")
    # the package's own hooks (`%load_ext arkouda_k8s`, the server extension's entry
    # point) name the front end they start: that is their job
    crossings = [c for c in crossings if not c.startswith("__init__ ->")]
    assert crossings == []


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
