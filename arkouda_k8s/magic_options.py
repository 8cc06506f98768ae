"""What a notebook user sets and types: where the magics' settings come from besides
IPython's own config, and the deployment options the magics share with the CLI.

Settings: ``ARKOUDA_K8S_<SETTING>`` in the environment, then ``[tool.arkouda-k8s]`` in
the nearest ``pyproject.toml``, then ``$ARKOUDA_K8S_CONFIG`` or
``~/.config/arkouda-k8s/config.toml``; ``%config`` and ipython_config win over all. A
project file never chooses ``kubeconfig`` or ``context``. Options: ``options.py``'s
argparse groups, as ``magic_arguments`` decorators, and the spec they build with the
settings as defaults.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from traitlets import TraitType, Unicode
from traitlets.config import Config

from . import options
from .errors import UsageError as ArkoudaUsageError

if TYPE_CHECKING:
    from .spec import ClusterSpec

SETTINGS = ("namespace", "context", "kubeconfig", "release", "locales", "short_errors", "widgets")
# Settings that choose credentials (a kubeconfig can name an exec plugin to run): never
# from a project file, which arrives with any repository a user opens.
NOT_FROM_PROJECT = ("kubeconfig", "context")
USER_CONFIG = "~/.config/arkouda-k8s/config.toml"
SETTINGS_HINT = "(hint: fix ARKOUDA_K8S_*, [tool.arkouda-k8s] or the config file)"


def settings_from_files(cwd: Path) -> dict[str, Any]:
    """Settings from env, the nearest pyproject.toml and the user config file (that order)."""
    import tomllib

    found: dict[str, Any] = {}

    def take(source: dict[str, Any], ignored: tuple[str, ...] = ()) -> None:
        for key, value in source.items():
            key = key.replace("-", "_")
            if key in SETTINGS and key not in found and key not in ignored:
                found[key] = value

    for key in SETTINGS:
        env = os.environ.get(f"ARKOUDA_K8S_{key.upper()}")
        if env is not None and env != "":
            found[key] = env
    for folder in (cwd, *cwd.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = tomllib.loads(pyproject.read_text())
            except (OSError, tomllib.TOMLDecodeError):
                data = {}
            take(data.get("tool", {}).get("arkouda-k8s", {}), ignored=NOT_FROM_PROJECT)
            break
    user = Path(os.path.expanduser(os.environ.get("ARKOUDA_K8S_CONFIG") or USER_CONFIG))
    if user.is_file():
        try:
            take(tomllib.loads(user.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ArkoudaUsageError(
                f"config file {user}: cannot read it: {exc}", "fix or remove the file"
            ) from None
    return found


def settings_config(
    section: str, traits: Mapping[str, TraitType[Any, Any]], shell_config: Config
) -> Config:
    """The config of ``section`` (the magics' class): the settings found in files, the
    shell's own config (``%config``, ipython_config.py) over them. Text from the
    environment or a file becomes the trait's type; bad values are a one-line
    ``UsageError``."""
    try:
        found = settings_from_files(Path.cwd())
    except ArkoudaUsageError as exc:
        raise UsageError(f"arkouda_k8s: {exc.one_line()}") from None
    config = Config()
    for key, value in found.items():
        trait = traits[key]
        if isinstance(value, str) and not isinstance(trait, Unicode):
            try:
                value = trait.from_string(value)
            except Exception:
                raise UsageError(
                    f"arkouda_k8s: setting {key}: invalid value {value!r} {SETTINGS_HINT}"
                ) from None
        config[section][key] = value
    config.merge(shell_config)  # %config and ipython_config.py win
    return config


def spec_with_settings(
    args: argparse.Namespace,
    *,
    namespace: str | None,
    release: str | None,
    locales: int | None,
) -> tuple[ClusterSpec, list[str]]:
    """(ClusterSpec, notes) of a magic's options, the settings' defaults below them.

    Built by :func:`options.spec_from_args`, as the CLI's (values files, the installed
    client's release when none is given). Order: options > values files > settings >
    the client's release > defaults. A ``release`` setting counts as given (no client
    match).
    """
    from .spec import ClusterSpec

    merged = argparse.Namespace(**{"values": [], **vars(args)})
    if getattr(merged, "namespace", None) is None:
        merged.namespace = namespace
    settings: dict[str, Any] = {"release": release, "locales": locales}
    defaults = {
        k: v for k, v in settings.items() if v is not None and getattr(merged, k, None) is None
    }
    if defaults and merged.values:
        # the files' own release and locales win over the settings: keep only the
        # settings the files leave at the spec's default
        from_files, _ = options.spec_from_args(merged)
        base = ClusterSpec()
        defaults = {k: v for k, v in defaults.items() if getattr(from_files, k) == getattr(base, k)}
    for key, value in defaults.items():
        setattr(merged, key, value)
    spec, notes = options.spec_from_args(merged, match_client=True)
    return cast(ClusterSpec, spec), notes


class SpecOptions(magic_arguments.ArgDecorator):
    """The spec options (``options.add_spec_options``), as the CLI's deploy has them."""

    def add_to_parser(self, parser: Any, group: Any) -> None:
        options.add_spec_options(parser)


class WaitOptions(magic_arguments.ArgDecorator):
    """The deploy's wait options (Timeouts), as the CLI's deploy has them."""

    def add_to_parser(self, parser: Any, group: Any) -> None:
        options.add_wait_options(parser)


class NamespaceOptions(magic_arguments.ArgDecorator):
    """The deploy's namespace options (--create-namespace, --ephemeral)."""

    def add_to_parser(self, parser: Any, group: Any) -> None:
        options.add_namespace_options(parser)


class ClusterOptions(magic_arguments.ArgDecorator):
    """--kubeconfig, --context, --namespace (and --all-namespaces)."""

    def __init__(self, all_namespaces: bool = False) -> None:
        self.all_namespaces = all_namespaces

    def add_to_parser(self, parser: Any, group: Any) -> None:
        options.add_cluster_options(parser, all_namespaces=self.all_namespaces)
