"""How a magic's failure is shown (the policy of ``magics``' module docstring).

Bad input is a one-line IPython ``UsageError`` naming the option and pointing at the
magic's help. Other failures of the library are one line with the reason and the hint
(``ArkoudaError``) in an interactive front end, the exception itself in batch runs. In
``%%arkouda`` an error the Arkouda server replied is one line too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast

from IPython.core.error import UsageError

from .credentials import redact
from .errors import ArkoudaK8sError, SpecError
from .errors import UsageError as ArkoudaUsageError

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


class ArkoudaError(Exception):
    """A failure shown as one line (reason and hint) instead of a traceback.

    IPython prints what ``_render_traceback_`` returns in place of the traceback, and
    the cell still fails (Jupyter stops "run all"). The original exception is the
    ``__cause__``; ``%config ArkoudaMagics.short_errors = False`` raises it instead.
    """

    def __init__(self, message: str, kind: str = "ArkoudaError") -> None:
        super().__init__(message)
        self.kind = kind

    def _render_traceback_(self) -> list[str]:
        return [f"{self.kind}: {self}"]


class ErrorPolicy(Protocol):
    """What decides between one line and the exception itself (``ArkoudaMagics``)."""

    def short_errors_now(self) -> bool: ...


# Spec fields that are command-line options, for error messages in the user's words.
_OPTION_OF_FIELD = {
    "name": "--name",
    "namespace": "--namespace",
    "mode": "--mode",
    "locales": "--locales",
    "threads": "--threads",
    "cpu": "--cpu",
    "memory": "--memory",
    "release": "--release",
    "image_repository": "--image-repository",
    "pull_policy": "--pull-policy",
    "authenticate": "--no-auth",
    "metrics": "--metrics",
    "registration": "--registration",
    "spread": "--spread",
}


def usage(magic: str, message: str) -> UsageError:
    return UsageError(f"%{magic}: {message} (hint: see `%{magic}?`)")


def _spec_error_line(exc: SpecError) -> str:
    option = _OPTION_OF_FIELD.get(exc.field, exc.field)
    return exc.one_line().replace(f"{exc.field}:", f"{option}:", 1)


def front_end(magic: str) -> Callable[[_Fn], _Fn]:
    """Run the magic method ``magic`` under the error policy (module docstring)."""

    def wrap(fn: _Fn) -> _Fn:
        @functools.wraps(fn)
        def run(self: ErrorPolicy, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except UsageError as exc:
                message = str(exc)
                if message.startswith(f"%{magic}:"):
                    raise
                raise usage(magic, message) from None
            except SpecError as exc:
                raise usage(magic, _spec_error_line(exc)) from None
            except ArkoudaUsageError as exc:
                raise UsageError(f"%{magic}: {exc.one_line()}") from None
            except ArkoudaK8sError as exc:
                if self.short_errors_now():
                    raise ArkoudaError(exc.one_line(), type(exc).__name__) from exc
                raise

        return cast(_Fn, run)

    return wrap


@contextmanager
def server_errors(policy: ErrorPolicy) -> Iterator[None]:
    """An error the Arkouda server replied (a ``RuntimeError`` raised inside the
    ``arkouda`` client) becomes ``ArkoudaServerError: <reason>`` when the policy wants
    one line; the user's own mistakes keep their traceback."""
    try:
        yield
    except RuntimeError as exc:
        if not _from_arkouda_client(exc) or not policy.short_errors_now():
            raise
        reason = " ".join(str(exc).split()).removeprefix("Error: ")
        raise ArkoudaError(redact(reason), "ArkoudaServerError") from exc


def _from_arkouda_client(exc: BaseException) -> bool:
    """Whether the exception was raised inside the ``arkouda`` client (a server reply)."""
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module == "arkouda" or module.startswith("arkouda."):
            return True
        tb = tb.tb_next
    return False
