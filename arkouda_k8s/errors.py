"""The one error hierarchy of arkouda-k8s.

Every error carries a one-line ``message`` and, where we know it, a ``hint`` that
says what the user can do. Front ends decide how to show them (a one-liner in a
notebook, exit code 1 or 2 from the CLI); the library never prints them itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any


class ArkoudaK8sError(Exception):
    """Base class: a failure with a readable reason and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and the hint on one line, as front ends show it."""
        text = " ".join(self.message.split())
        if self.hint:
            text += f" (hint: {' '.join(self.hint.split())})"
        return text

    def __str__(self) -> str:
        return self.one_line()


def one_line(exc: BaseException | None) -> str:
    """Any exception on one line (ours with its hint), for hints and log lines."""
    if exc is None:
        return ""
    if isinstance(exc, ArkoudaK8sError):
        return exc.one_line()
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class SpecError(ArkoudaK8sError, ValueError):
    """A deployment setting is invalid: names the field, the value and what is allowed."""

    exit_code = 2

    def __init__(self, field: str, value: Any, allowed: str, hint: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: invalid value {value!r}; {allowed}", hint)


class UsageError(ArkoudaK8sError):
    """Bad input that is not a spec field (a command-line option, a file)."""

    exit_code = 2


class SpecConflict(UsageError):
    """A deployment of that name exists with other settings (a REST client gets 409)."""


class KubeError(ArkoudaK8sError):
    """The Kubernetes API refused or failed a request."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.reason = reason


class PreflightError(ArkoudaK8sError):
    """The cluster cannot take this deployment; nothing was created."""

    def __init__(
        self, message: str, hint: str | None = None, *, problems: list[str] | None = None
    ) -> None:
        super().__init__(message, hint)
        self.problems = list(problems or [])


class PermissionsMissing(PreflightError):
    """The current user lacks permissions; ``rbac`` is the YAML an admin must apply."""

    def __init__(self, missing: list[str], rbac: str, user: str | None = None) -> None:
        who = f" for {user}" if user else ""
        super().__init__(
            f"missing permissions{who}: {', '.join(missing)}",
            "ask an administrator to apply the RBAC printed by `arkouda-k8s deploy --print-rbac`",
            problems=missing,
        )
        self.missing = list(missing)
        self.rbac = rbac


class DeployError(ArkoudaK8sError):
    """A deployment stage failed; ``stage`` names it, ``reason`` is Kubernetes' reason."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        stage: str = "",
        reason: str = "",
        pod: str | None = None,
        log_tail: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.stage = stage
        self.reason = reason
        self.pod = pod
        self.log_tail = log_tail


class UnschedulableError(DeployError):
    """The scheduler cannot place a pod (the scheduler's message is in ``message``)."""


class ImagePullError(DeployError):
    """An image cannot be pulled (ErrImagePull / ImagePullBackOff)."""


class CrashError(DeployError):
    """A container keeps crashing or was OOM-killed; ``log_tail`` has its last lines."""


class StageTimeout(DeployError):
    """A stage did not finish within its deadline."""


class ClusterNotFound(ArkoudaK8sError):
    """No arkouda-k8s deployment of that name is visible."""


class TunnelError(ArkoudaK8sError):
    """The port-forward tunnel failed or is closed."""


class TunnelForbidden(TunnelError):
    """The API server refused the port-forward (401/403): waiting will not change that."""


class ServerNotAnswering(ArkoudaK8sError):
    """The Arkouda port accepts connections but the server does not reply."""


class ServerUnreachable(ServerNotAnswering):
    """No Arkouda server answered the handshake within the wait (``arkouda-k8s run`` exits
    3, so a pipeline retries the step rather than failing it as broken)."""

    exit_code = 3


class SessionError(ArkoudaK8sError):
    """Binding the installed arkouda client to the server failed."""


class ClientMissing(SessionError):
    """The ``arkouda`` client package is not installed."""


@contextlib.contextmanager
def logged(log: logging.Logger, what: str) -> Iterator[None]:
    """Swallow an exception that must not stop the caller (a best-effort close or a
    status extra), with a debug line on ``log`` so that it is not lost."""
    try:
        yield
    except Exception as exc:
        log.debug("%s failed: %s", what, exc, exc_info=True)
