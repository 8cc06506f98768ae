"""Every test of this folder is also a secret-leak test.

``needles`` collects, from the sandbox's store as they are written, every value of
every Secret any test creates (tokens, private keys, client certificates' keys) and the
sandbox's admin token. After each test its captured stdout/stderr and every log record
(DEBUG and up, any logger) are searched for them; a test may hand more text (an
exception, a repr, a CLI's output) to ``needles.check``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import pytest


class Needles:
    """Secret material seen in the sandbox, and the search for it in text."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < 12:
            return  # too short to be key material (and to search for without noise)
        lines = [line.strip() for line in secret.splitlines()]
        body = [line for line in lines if line and not line.startswith("-----")]
        if len(body) > 1:
            # a PEM or an ssh key: each line of its body is a needle of its own
            self.values.update(line for line in body if len(line) >= 12)
        else:
            self.values.add(secret)

    def on_change(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        if resource != "secrets" or kind == "DELETED":
            return
        for value in (obj.get("data") or {}).values():
            try:
                self.add(base64.b64decode(value).decode("utf-8", "replace"))
            except (ValueError, TypeError):
                continue
            if len(value) >= 16:
                self.values.add(value)  # the base64 form, as a Secret's YAML shows it
        for value in (obj.get("stringData") or {}).values():
            self.add(str(value))

    def found_in(self, text: str) -> list[str]:
        return [f"{v[:6]}... ({len(v)} chars)" for v in self.values if v in text]

    def check(self, text: str, where: str = "output") -> None:
        leaked = self.found_in(text)
        assert not leaked, f"secret material in {where}: {leaked}"


@pytest.fixture(scope="module")
def needles(sb: Any) -> Iterator[Needles]:
    found = Needles()
    found.add(sb.admin_token)
    unsubscribe = sb.store.subscribe(found.on_change)
    # Secrets that exist already (made before this module started)
    for obj in sb.store.iter_raw("secrets"):
        found.on_change("ADDED", "secrets", obj)
    yield found
    unsubscribe()


@pytest.fixture(autouse=True)
def no_secret_in_output(
    needles: Needles, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    out = capsys.readouterr()
    needles.check(out.out, "stdout")
    needles.check(out.err, "stderr")
    for record in caplog.records:
        needles.check(record.getMessage(), f"log record of {record.name}")
        if record.exc_text:
            needles.check(record.exc_text, f"logged exception of {record.name}")
