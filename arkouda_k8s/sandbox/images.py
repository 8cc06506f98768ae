"""Image models: what a container of a known image finds in its filesystem.

The facts (user, uid, PATH, WORKDIR, entrypoint, what /opt/arkouda holds, ...) come from
``image_facts.yaml`` with their sources; this module turns them into a *layer*, a
directory the kubelet puts under a container's writable layer and over this machine's
root (an overlay mount, see container_init.py). A layer holds the image's own
/etc/passwd, /etc/group, /etc/shadow and /etc/sudoers (user ``ubuntu``, uid 1000,
passwordless sudo), its home directory, sshd host keys, and in /opt/arkouda the
sandbox's stand-ins for the Chapel programs: ``arkouda_server`` (the amudprun launcher,
launcher.py) and ``arkouda_server_real`` (the stand-in server, arkouda_server.py). The
rest of the image (sh, sudo, python3, OpenSSH) is this machine's own: its Debian
userland plays the image's Ubuntu one.

Images the sandbox has no model for run as root over this machine's root with today's
PATH; a container without a command is then idle (docs/internals.md, "image table").
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import image_facts

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_SANDBOX_DIR = str(Path(__file__).resolve().parent)
_MODELS = (
    (re.compile(r"(^|/)arkouda-udp-server(:|@|$)"), "udp-server"),
    (re.compile(r"(^|/)arkouda-smp-server(:|@|$)"), "smp-server"),
    (re.compile(r"(^|/)prometheus-arkouda-exporter(:|@|$)"), "exporter"),
    # The project's own image (pipeline containers run `arkouda-k8s run ...`).
    (re.compile(r"(^|/)arkouda-k8s(-runner)?(:|@|$)"), "runner"),
)
NOTE = "sandbox stand-in, not Arkouda"


@dataclass(frozen=True)
class ImageModel:
    """How a container of one image starts: user, groups, PATH, WORKDIR, entrypoint."""

    kind: str  # "udp-server", "smp-server", "exporter", "runner" or "generic"
    image: str
    user: str = "root"
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = (0,)
    home: str = "/root"
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()  # the image's CMD: the arguments when the pod gives none
    sshd: bool = False

    @property
    def arkouda(self) -> bool:
        return self.kind in ("udp-server", "smp-server")

    @property
    def release(self) -> str:
        tail = self.image.rsplit("/", 1)[-1].split("@", 1)[0]
        return tail.split(":", 1)[1] if ":" in tail else ""


def model_for(image: str) -> ImageModel:
    """The model of ``image`` (by repository name; any registry, any tag)."""
    kind = next((k for pattern, k in _MODELS if pattern.search(image)), "generic")
    if kind == "generic":
        return ImageModel("generic", image, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    if kind == "runner":
        # This project's own image (images/runner/Dockerfile): python:3.11-slim with the
        # project in a virtual environment first on PATH (here: the running Python's),
        # user 10001, WORKDIR /home/runner, ENTRYPOINT arkouda-k8s run, CMD --help.
        bindir = str(Path(sys.executable).parent)
        return ImageModel(
            "runner",
            image,
            user="runner",
            uid=10001,
            gid=10001,
            groups=(10001,),
            home="/home/runner",
            workdir="/home/runner",
            env={
                "PATH": f"{bindir}:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONUNBUFFERED": "1",
                "HOME": "/home/runner",
            },
            entrypoint=("arkouda-k8s", "run"),
            cmd=("--help",),
        )
    facts = image_facts.image(kind)
    env = {k: str(v) for k, v in (facts.get("env") or {}).items()}
    env["PATH"] = ":".join(p.rstrip("/") or "/" for p in facts["path"])
    if kind == "exporter":
        env["PYTHONPATH"] = "/usr/local/lib/sandbox-site"  # the stand-in exporter module
        return ImageModel(
            kind,
            image,
            workdir=facts["workdir"],
            env=env,
            entrypoint=("/bin/sh", "-c", facts["entrypoint"]),
        )
    return ImageModel(
        kind,
        image,
        user=facts["user"],
        uid=int(facts["uid"]),
        gid=int(facts["gid"]),
        groups=(int(facts["gid"]), _SUDO_GID),
        home=facts["home"],
        workdir=facts["workdir"],
        env=env,
        # Docker's shell form: ENTRYPOINT sh ... runs as /bin/sh -c "sh ...".
        entrypoint=("/bin/sh", "-c", facts["entrypoint"]),
        sshd=bool(facts.get("sshd")),
    )


_SUDO_GID = 27  # Ubuntu's sudo group
_SSHD_UID = 105  # the privilege-separation user openssh-server adds on Ubuntu 22.04


class Layers:
    """The image layers one kubelet built (one per image reference, built on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Path] = {}
        self._lock = threading.Lock()

    def layer(self, model: ImageModel) -> Path:
        with self._lock:
            where = self._built.get(model.image)
            if where is None:
                where = self.root / f"{len(self._built):04d}-{model.kind}"
                if where.exists():
                    shutil.rmtree(where)
                where.mkdir(parents=True)
                build_layer(model, where)
                self._built[model.image] = where
            return where


def _write(path: Path, text: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _mkdir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _passable(layer: Path) -> None:
    """Let the image's user reach this machine's Python and the project (never list)."""
    for top in {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent)}:
        for d in [Path(top), *Path(top).parents]:
            if d == Path("/"):
                break
            mode = os.stat(d).st_mode
            if not mode & stat.S_IXOTH:
                _mkdir(layer / str(d).lstrip("/"), stat.S_IMODE(mode) | 0o111)


def host_dirs() -> list[str]:
    """This machine's directories every container needs (the Python that runs the stand-ins,
    the project) that an overlay of "/" does not show: those on another filesystem."""
    root = os.stat("/").st_dev
    wanted = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parents[1])}
    found = []
    for d in sorted(wanted | {str(_PROJECT_ROOT)}):
        with contextlib.suppress(OSError):
            if os.stat(d).st_dev != root:
                found.append(d)
    return found


def _python_stub(target: str, what: str) -> str:
    """A program file of the image, run by this machine's Python (shown as itself in ps)."""
    return (
        f"#!{sys.executable} -I\n"
        f"# {what} ({NOTE}): the sandbox's model of the image's program.\n"
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(_PROJECT_ROOT)!r})\n"
        f"{target}\n"
    )


def build_layer(model: ImageModel, layer: Path) -> None:
    """Write ``model``'s own files into ``layer`` (a directory owned by the kubelet)."""
    _passable(layer)
    if model.kind == "exporter":
        _exporter_files(layer)
    if model.uid == 0:
        return
    uid, gid = model.uid, model.gid
    etc = layer / "etc"
    _write(
        etc / "passwd",
        "root:x:0:0:root:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        f"sshd:x:{_SSHD_UID}:65534::/run/sshd:/usr/sbin/nologin\n"
        f"{model.user}:x:{uid}:{gid}::{model.home}:/bin/bash\n",
        0o644,
    )
    sudoers = model.user if model.arkouda else ""
    _write(
        etc / "group",
        f"root:x:0:\ndaemon:x:1:\nsudo:x:{_SUDO_GID}:{sudoers}\nshadow:x:42:\n"
        f"nogroup:x:65534:\n{model.user}:x:{gid}:\n",
        0o644,
    )
    # "*": no password login, but not locked (sshd refuses locked accounts' keys too).
    _write(
        etc / "shadow",
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"
        f"sshd:*:19000:0:99999:7:::\n{model.user}:*:19000:0:99999:7:::\n",
        0o640,
        gid=42,
    )
    _mkdir(layer / model.home.lstrip("/"), 0o755, uid, gid)
    if not model.arkouda:
        return
    _write(
        etc / "sudoers",
        "Defaults env_reset\n"
        'Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'
        "root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL) NOPASSWD:ALL\n",
        0o440,
    )
    if model.sshd:
        _mkdir(etc / "ssh", 0o755)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f"]
            + [str(etc / "ssh" / "ssh_host_ed25519_key")],
            check=True,
        )
    facts = image_facts.image(model.kind)
    _mkdir(layer / "opt", 0o777, uid, gid)
    for d in facts["path"]:
        if d.startswith("/opt/") and model.kind == "udp-server":
            _mkdir(layer / d.strip("/"), 0o777)
    ark = layer / facts["arkouda_dir"].lstrip("/")
    _mkdir(ark, 0o755, uid, gid)
    _mkdir(ark / "dep", 0o755, uid, gid)
    _mkdir(ark / "arkouda", 0o755, uid, gid)
    _write(
        Path(str(layer) + facts["launcher"]),
        _python_stub(
            f"sys.path.append({_SANDBOX_DIR!r}); import launcher; launcher.main()",
            "arkouda_server: Chapel's launcher",
        ),
        0o755,
        uid,
        gid,
    )
    _write(
        Path(str(layer) + facts["real_program"]),
        _python_stub(
            "if any(a.startswith('--sandbox-locale=') for a in sys.argv):\n"
            f"    sys.path.append({_SANDBOX_DIR!r}); import launcher; launcher.main()\n"
            "else:\n"
            f"    import os; os.environ.setdefault('ARKOUDA_RELEASE', {model.release!r})\n"
            "    runpy.run_module('arkouda_k8s.sandbox.arkouda_server', run_name='__main__')",
            "arkouda_server_real: the Arkouda server program",
        ),
        0o755,
        uid,
        gid,
    )
    for script in facts["image_scripts"]:
        _write(Path(str(layer) + script), _IMAGE_SCRIPTS[Path(script).name], 0o644)


# The image's own start scripts, as they behave (see image_facts.yaml for the upstream
# files): start ssh with sudo, copy the keys from ~/ssh-keys, then wait or launch.
_START_SSH = """\
sudo mkdir -p /run/sshd && sudo /usr/sbin/sshd
mkdir ~/.ssh/
sudo cp ~/ssh-keys/id_rsa* ~/.ssh/
sudo chown -R ubuntu:ubuntu ~/.ssh/*
chmod -R 600 ~/.ssh/*
cat ~/.ssh/id_rsa.pub > ~/.ssh/authorized_keys
"""
_IMAGE_SCRIPTS = {
    "start-arkouda-locale.sh": "#!/bin/bash\n# the image's locale script (model)\n"
    + _START_SSH
    + "while true; do sleep 600; done\n",
    "start-arkouda-server.sh": "#!/bin/bash\n# the image's server script (model): its locale\n"
    "# discovery needs the chart's client certificate and the arkouda_integration helper.\n"
    + _START_SSH
    + 'export SSH_SERVERS="$MY_IP $(python3 /opt/arkouda-contrib/arkouda_integration/client/'
    'scripts/pods.py -i=get_pod_ips --namespace=arkouda --app_name=arkouda-locale)"\n'
    "/opt/arkouda/arkouda_server -nl ${NUMLOCALES:-1} "
    "--ExternalIntegration.systemType=SystemType.KUBERNETES "
    "--ServerDaemon.daemonTypes=ServerDaemonType.INTEGRATION --memTrack=${MEMTRACK:-true} "
    "--authenticate=${AUTHENTICATE:-false} --logLevel=${LOG_LEVEL:-LogLevel.INFO}\n",
    "start-smp-arkouda-server.sh": "#!/bin/bash\n# the image's smp script (model)\n"
    "/opt/arkouda/arkouda_server -nl ${NUMLOCALES:-1} --memTrack=${MEMTRACK:-true} "
    "--authenticate=${AUTHENTICATE:-false} --logLevel=${LOG_LEVEL:-LogLevel.INFO}\n",
}


def _exporter_files(layer: Path) -> None:
    """``python`` and the ``arkouda_metrics_exporter`` module the entrypoint imports."""
    _write(
        layer / "usr/local/bin/python",
        f'#!/bin/sh\nexec {sys.executable} "$@"\n',
        0o755,
    )
    pkg = layer / "usr/local/lib/sandbox-site/arkouda_metrics_exporter"
    _write(pkg / "__init__.py", "", 0o644)  # found through the model's PYTHONPATH
    _write(
        pkg / "metrics.py",
        f"# arkouda_metrics_exporter.metrics ({NOTE})\n"
        "import runpy\n\n\ndef main():\n"
        f"    runpy.run_path({str(Path(__file__).with_name('exporter.py'))!r}, "
        "run_name='__main__')\n",
        0o644,
    )


def sshd_config(ip: str) -> str:
    """A pod's sshd configuration: its own address only (a pod's network is its own)."""
    return (
        f"# sshd of one sandbox pod: listens on the pod's address only\n"
        f"ListenAddress {ip}:22\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "UsePAM no\n"
        "StrictModes yes\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "AuthorizedKeysFile .ssh/authorized_keys\n"
        "PrintMotd no\n"
    )


def describe(model: ImageModel) -> dict[str, Any]:
    """The model as plain data (for docs and tests)."""
    return {
        "kind": model.kind,
        "user": model.user,
        "uid": model.uid,
        "workdir": model.workdir,
        "path": model.env.get("PATH", ""),
        "entrypoint": list(model.entrypoint),
    }
