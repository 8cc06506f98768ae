"""The facts about the real Arkouda images (``image_facts.yaml``), read and checked.

The YAML file is the data: each fact of each image (and of the ``arkouda_server``
program itself) with the public source it was read from. The sandbox models its images
on it and the tests check our manifests and launch scripts against it, so a bug that
only the real image would show is caught here. See the top of the YAML for the format.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

FACTS_FILE = Path(__file__).with_name("image_facts.yaml")
IMAGES = ("udp-server", "smp-server", "exporter")


class FactsError(ValueError):
    """The facts file does not follow its documented format."""


def _check_fact(where: str, fact: Any, sources: dict[str, Any]) -> None:
    if not isinstance(fact, dict) or "value" not in fact or "source" not in fact:
        raise FactsError(f"{where}: a fact is a mapping with value and source")
    unknown = set(fact) - {"value", "source", "note"}
    if unknown:
        raise FactsError(f"{where}: unknown keys {sorted(unknown)} (value, source, note)")
    for part in str(fact["source"]).removeprefix("inferred:").split(","):
        ident, sep, path = part.strip().partition(":")
        if ident in sources and not (sep and path.split(" ")[0]):
            raise FactsError(f"{where}: source {part.strip()!r} names no file")
    if not any(f"{ident}:" in str(fact["source"]) for ident in sources) and "inferred" not in str(
        fact["source"]
    ):
        raise FactsError(f"{where}: source {fact['source']!r} names none of {sorted(sources)}")


@functools.cache
def load() -> dict[str, Any]:
    """The whole file, checked against its format (cached: it never changes at run time)."""
    data = yaml.safe_load(FACTS_FILE.read_text())
    sources = data.get("sources") or {}
    for ident, src in sources.items():
        if not {"repository", "commit"} <= set(src):
            raise FactsError(f"sources.{ident}: needs repository and commit")
    images = data.get("images") or {}
    if set(images) != set(IMAGES):
        raise FactsError(f"images: expected {list(IMAGES)}, found {sorted(images)}")
    for image, facts in images.items():
        for name, fact in facts.items():
            _check_fact(f"images.{image}.{name}", fact, sources)
    for name, fact in (data.get("server") or {}).items():
        _check_fact(f"server.{name}", fact, sources)
    return data


def image(name: str) -> dict[str, Any]:
    """Every fact of one image as ``{fact: value}`` (sources left out)."""
    try:
        facts = load()["images"][name]
    except KeyError:
        raise KeyError(f"no image {name!r} in {FACTS_FILE.name}; known: {IMAGES}") from None
    return {k: v["value"] for k, v in facts.items()}


def server() -> dict[str, Any]:
    """Every fact of the arkouda_server program as ``{fact: value}``."""
    return {k: v["value"] for k, v in load()["server"].items()}


def image_for(mode: str) -> dict[str, Any]:
    """The facts of the server image of a deployment mode ("udp" or "smp")."""
    return image(f"{mode}-server")
