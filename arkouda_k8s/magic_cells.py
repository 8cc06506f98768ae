"""What ``%%arkouda`` does around the user's code: runs a cell in the user namespace,
reports its time, the server's time and the server's memory change, and removes the
user's arrays of a server before ``ak`` leaves it."""

from __future__ import annotations

import ast
import gc
from typing import TYPE_CHECKING, Any

from .errors import ArkoudaK8sError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .interfaces import NotebookCluster


def run_cell(shell: InteractiveShell, cell: str) -> Any:
    """Run code in the user namespace; the last expression's value is the result."""
    code = shell.transform_cell(cell)
    filename = shell.compile.cache(code, shell.execution_count)
    tree = ast.parse(code, filename=filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    ns = shell.user_ns
    exec(compile(tree, filename, "exec"), ns)  # noqa: S102 - running the user's cell
    if last is not None:
        return eval(compile(last, filename, "eval"), ns)  # noqa: S307
    return None


def memory_used(cluster: NotebookCluster) -> int | None:
    try:
        return cluster.memory_used()
    except ArkoudaK8sError:
        return None


def server_time(cluster: NotebookCluster) -> tuple[int, float] | None:
    """(requests, seconds waiting on the server) so far, when a session counts them."""
    return None if cluster.session is None else cluster.session.server_time()


def cell_report(
    name: str,
    elapsed: float,
    server: tuple[int, float] | None,
    before: int | None,
    after: int | None,
) -> str:
    from .spec import format_bytes

    text = f"[arkouda {name}] cell {elapsed:.3f} s"
    if server is not None:
        text += f", server {server[1]:.3f} s in {server[0]} requests"
    if before is not None and after is not None:
        delta = after - before
        sign = "+" if delta >= 0 else "-"
        text += f", server memory {sign}{format_bytes(abs(delta))} (now {format_bytes(after)})"
    return text


def remove_arrays(user_ns: dict[str, Any]) -> list[str]:
    """Remove the arkouda client's objects from the user namespace and ``Out``, and let
    their deletes reach their server now; the names the user gave (no ``_`` prefix).

    The client holds one connection per process and names arrays id_1, id_2, ... on
    every server: an array of another server, garbage-collected later, would delete the
    current server's array of the same name.
    """
    names = [k for k, v in user_ns.items() if _is_arkouda_object(v)]
    for key in names:
        del user_ns[key]
    out = user_ns.get("Out")
    if isinstance(out, dict):
        for key in [k for k, v in out.items() if _is_arkouda_object(v)]:
            del out[key]
    gc.collect()  # their deletes reach their own server now, not the next one
    return sorted(k for k in names if not k.startswith("_"))


def _is_arkouda_object(value: Any) -> bool:
    """An object of the arkouda client (pdarray, Strings, ...), found without importing it."""
    module = type(value).__module__ or ""
    return module == "arkouda" or module.startswith("arkouda.")
