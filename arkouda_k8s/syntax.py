"""What Kubernetes and image registries accept in a setting, checked before anything
reaches a cluster: quantities (``parse_quantity``, ``format_bytes``), DNS names and
subdomains, label and annotation keys and values, tolerations, image tags and
repositories. Each check raises :class:`~arkouda_k8s.errors.SpecError` naming the field
and what is allowed. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import SpecError

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# registry[:port]/path/components (Docker reference grammar, without tag or digest).
_REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_HOST = r"[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*(?::[0-9]+)?"
IMAGE_REPOSITORY = re.compile(rf"^(?:{_REPO_HOST}/)?{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*$")
ABSOLUTE_PATH = re.compile(r"^/[^\0]*$")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|([A-Za-z]{0,2}))$"
)


def parse_quantity(text: Any) -> Decimal:
    """A Kubernetes quantity ("1", "500m", "2Gi", "1.5G", "1e3") as a Decimal.

    Raises ValueError for anything Kubernetes would reject.
    """
    wrong = ValueError(f"quantity {text!r} is not a Kubernetes quantity")
    if isinstance(text, bool):
        raise wrong
    if isinstance(text, int | float | Decimal):
        text = str(text)
    if not isinstance(text, str):
        raise wrong
    m = _QUANTITY.match(text.strip()) if text == text.strip() else None
    if not m:
        raise wrong
    number, exponent, suffix = m.group(1), m.group(2), m.group(3) or ""
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise wrong from exc
    if exponent:
        return value * (Decimal(10) ** int(exponent[1:]))
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    raise ValueError(f"quantity {text!r} is not a Kubernetes quantity (unknown suffix {suffix!r})")


def format_bytes(n: int) -> str:
    """Bytes as a short human string (2.0 GiB), for messages."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def check_name(fname: str, value: Any, max_len: int = 63, dns1035: bool = False) -> None:
    pattern = _DNS1035 if dns1035 else _DNS1123_LABEL
    first = "a letter" if dns1035 else "a letter or digit"
    if not isinstance(value, str) or not value or len(value) > max_len or not pattern.match(value):
        raise SpecError(
            fname,
            value,
            f"lower-case letters, digits and '-', starting with {first}, ending with a "
            f"letter or digit, at most {max_len} characters (RFC 1123)",
        )


def check_subdomain(fname: str, value: Any) -> None:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 253
        or not _DNS1123_SUBDOMAIN.match(value)
    ):
        raise SpecError(
            fname, value, "a DNS subdomain name: lower-case letters, digits, '-' and '.'"
        )


def check_label_key(fname: str, key: Any) -> None:
    ok = isinstance(key, str) and key.count("/") <= 1
    if ok:
        prefix, _, name = key.rpartition("/")
        ok = (
            (not prefix or (len(prefix) <= 253 and bool(_DNS1123_SUBDOMAIN.match(prefix))))
            and 0 < len(name) <= 63
            and bool(_LABEL_NAME.match(name))
        )
    if not ok:
        raise SpecError(
            fname,
            key,
            "a label/annotation key: [prefix/]name, name up to 63 characters of letters, "
            "digits, '-', '_', '.', prefix a DNS subdomain",
        )


def check_label_value(fname: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
        raise SpecError(
            fname,
            value,
            "a label value: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (or empty)",
        )


def check_int(fname: str, value: Any, low: int, high: int | None = None) -> None:
    bad = isinstance(value, bool) or not isinstance(value, int)
    if not bad and (value < low or (high is not None and value > high)):
        bad = True
    if bad:
        allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        raise SpecError(fname, value, allowed)


def mapping_of(fname: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(fname, value, "a mapping of key: value")
    return dict(value)


_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute", "")


def check_toleration(i: int, tol: Any) -> dict[str, Any]:
    fname = f"tolerations[{i}]"
    if not isinstance(tol, Mapping):
        raise SpecError(fname, tol, "a mapping with key, operator, value, effect")
    tol = dict(tol)
    unknown = set(tol) - _TOLERATION_KEYS
    if unknown:
        raise SpecError(
            f"{fname}.{sorted(unknown)[0]}",
            tol[sorted(unknown)[0]],
            f"toleration fields are {', '.join(sorted(_TOLERATION_KEYS))}",
        )
    op = tol.get("operator", "Equal")
    if op not in ("Equal", "Exists"):
        raise SpecError(f"{fname}.operator", op, "Equal or Exists")
    if "key" in tol:
        check_label_key(f"{fname}.key", tol["key"])
    elif op != "Exists":
        raise SpecError(f"{fname}.key", None, "a key (only operator Exists may omit it)")
    if "value" in tol:
        if op == "Exists" and tol["value"]:
            raise SpecError(f"{fname}.value", tol["value"], "no value with operator Exists")
        check_label_value(f"{fname}.value", tol["value"])
    if tol.get("effect", "") not in _TOLERATION_EFFECTS:
        raise SpecError(
            f"{fname}.effect", tol.get("effect"), "NoSchedule, PreferNoSchedule or NoExecute"
        )
    if "tolerationSeconds" in tol:
        check_int(f"{fname}.tolerationSeconds", tol["tolerationSeconds"], 0)
        if tol.get("effect") != "NoExecute":
            raise SpecError(
                f"{fname}.tolerationSeconds",
                tol["tolerationSeconds"],
                "only with effect NoExecute",
            )
    return tol


def parse_time(text: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``...Z``) as an aware datetime; None when absent
    or unreadable."""
    if not text or not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
