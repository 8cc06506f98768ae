"""Run one rendered container's command over a model of its real image, for the tests.

The model comes from ``arkouda_k8s/sandbox/image_facts.yaml``: the image's user (uid,
groups, passwordless sudo), home, PATH, working directory, what ``/opt/arkouda`` holds
(Chapel's launcher is a recorder here: it writes what it was started with, from where,
and whether the program it would start on each locale is still there), and whether
``~/.ssh`` exists. The machine's own filesystem is the lower layer of an overlay (its
``sh``, ``python3`` and ``sudo``), with ``/opt`` and ``/home`` replaced by the image's.
The pod's volumes are bind-mounted over that tree at their mount paths, read-only where
the spec says so, exactly as a container runtime does: a ConfigMap mounted over
``/opt/arkouda`` hides the launcher here as it would on a cluster.

Needs root (mount namespaces, overlayfs, chroot); :func:`available` says why not.
``sshd`` is a recorder too: a real one would listen on the machine's port 22.

    root = PodRoot("udp-server", pod, container, objects, field_refs={...})
    result = root.run(timeout=60)           # or proc = root.start(); ...; root.close()
    root.launcher()                          # what /opt/arkouda/arkouda_server recorded
    root.read("/home/ubuntu/.arkouda/tokens.txt")
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from arkouda_k8s.sandbox import image_facts
from arkouda_k8s.sandbox.kubelet import container_privileges as kubelet_privileges

LAUNCHER_RECORD = "/tmp/arkouda-launcher.json"
SSHD_RECORD = "/tmp/sshd-started"
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

# Chapel's launcher, as a recorder: the real one starts arkouda_server_real on every
# locale over ssh, from the directory it lives in.
_LAUNCHER = """#!/usr/bin/python3
import json, os, sys
here = os.path.dirname(os.path.abspath(sys.argv[0]))
rec = {
    "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ), "uid": os.getuid(),
    "real_program": os.access(os.path.join(here, "arkouda_server_real"), os.X_OK),
    "dep": os.path.isdir(os.path.join(here, "dep")),
}
tokens = os.path.join(os.getcwd(), ".arkouda", "tokens.txt")
try:
    with open(tokens, "r+") as f:  # read-write, as arkouda_server opens it (FileIO.chpl)
        rec["token"] = f.read().splitlines()[-1].strip()
    rec["token_mode"] = oct(os.stat(tokens).st_mode & 0o777)
except OSError as exc:
    rec["token_error"] = str(exc)
with open("%s", "w") as f:
    json.dump(rec, f)
"""

_SSHD = f"""#!/bin/sh
echo "uid=$(id -u) $*" >> {SSHD_RECORD}
"""

# Runs inside `unshare -m`: overlay, volumes, chroot, the image's user, the command.
_ENTER = r"""
import json, os, subprocess, sys
cfg = json.load(open(sys.argv[1]))
root = cfg["root"]
def mount(*args):
    subprocess.run(["mount", *args], check=True)
mount("-t", "overlay", "overlay", "-o",
      "lowerdir=/,upperdir=%s,workdir=%s" % (cfg["upper"], cfg["work"]), root)
mount("--rbind", "/dev", root + "/dev")
mount("-t", "proc", "proc", root + "/proc")
for source, target, read_only in cfg["mounts"]:
    mount("--bind", source, target)
    if read_only:
        mount("-o", "remount,bind,ro", target)
os.chroot(root)
os.chdir(cfg["cwd"])
# The securityContext, as the sandbox's kubelet applies it (container_init.py).
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
if cfg["capabilities"] is not None:
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, CLEAR_ALL
    for cap in range(int(open("/proc/sys/kernel/cap_last_cap").read()) + 1):
        if cap not in cfg["capabilities"] and libc.prctl(24, cap, 0, 0, 0) != 0:
            sys.exit("cannot drop capability %d" % cap)
if cfg["no_new_privs"] and libc.prctl(38, 1, 0, 0, 0) != 0:
    sys.exit("cannot set no_new_privs")
os.setgroups(cfg["groups"])
os.setgid(cfg["gid"])
os.setuid(cfg["uid"])
os.execvpe(cfg["argv"][0], cfg["argv"], cfg["env"])
"""


def available() -> str | None:
    """None when pods can be modelled here, else why not (for pytest.skip)."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces, overlayfs, chroot)"
    for tool in ("unshare", "mount", "sudo"):
        if not shutil.which(tool):
            return f"needs {tool}"
    return None


class PodRoot:
    """One container of a rendered pod, run over a model of its image (see the module)."""

    def __init__(
        self,
        image: str,
        pod: dict[str, Any],
        container: dict[str, Any],
        objects: dict[tuple[str, str], dict[str, Any]],
        *,
        field_refs: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        service_account: dict[str, bytes] | None = None,
        host_paths: dict[str, Path] | None = None,
    ) -> None:
        self.facts = image_facts.image(image)
        self.pod = pod
        self.container = container
        self.objects = objects
        self.field_refs = dict(field_refs or {})
        self.extra_env = dict(extra_env or {})
        self.service_account = service_account
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = Path(tempfile.mkdtemp(prefix="arkouda-k8s-podroot-", dir=shm))
        os.chmod(self.dir, 0o755)  # the image's user walks through the volume dirs
        self.upper = self.dir / "upper"
        # hostPath directories: a node's, shared with another container's PodRoot if given
        self.host_paths: dict[str, Path] = dict(host_paths or {})
        self.proc: subprocess.Popen[str] | None = None
        self._build()

    # -- the image --------------------------------------------------------------------

    def _up(self, path: str) -> Path:
        return self.upper / path.lstrip("/")

    def _opaque_dir(self, path: str) -> Path:
        """A directory of the image that hides the machine's own (overlayfs opaque)."""
        d = self._up(path)
        d.mkdir(parents=True, exist_ok=True)
        os.setxattr(d, "trusted.overlay.opaque", b"y")
        return d

    def _build(self) -> None:
        f = self.facts
        uid, gid = f["uid"], f.get("gid", f["uid"])
        for sub in ("upper", "work", "root", "volumes", "hostpaths"):
            (self.dir / sub).mkdir()
        opt = self._opaque_dir("/opt")
        os.chmod(opt, 0o777)  # chmod 777 /opt in the base images
        arkouda = Path(self._up(f["arkouda_dir"]))
        for entry in f["arkouda_dir_contents"]:
            p = self._up(entry)
            p.parent.mkdir(parents=True, exist_ok=True)
            if entry == f["launcher"]:
                p.write_text(_LAUNCHER % LAUNCHER_RECORD)
            elif "." in p.name or p.name.endswith("_real"):
                p.write_text("#!/bin/sh\necho 'the image file " + entry + "'\n")
            else:
                p.mkdir(exist_ok=True)
            if p.is_file():
                p.chmod(0o755)
        for p in [arkouda, *arkouda.rglob("*")]:
            os.chown(p, uid, gid)
        home = self._opaque_dir("/home")
        os.chmod(home, 0o755)
        user_home = self._up(f["home"])
        user_home.mkdir(parents=True)
        os.chown(user_home, uid, gid)
        if f.get("dot_ssh_at_start") == "present":
            (user_home / ".ssh").mkdir(mode=0o700)
            os.chown(user_home / ".ssh", uid, gid)
        self._write_accounts(f["user"], uid, gid, f["home"], f.get("sudo") == "passwordless")
        sshd = self._up(f.get("sshd", "/usr/sbin/sshd"))
        sshd.parent.mkdir(parents=True, exist_ok=True)
        sshd.write_text(_SSHD)
        sshd.chmod(0o755)
        tmp = self._up("/tmp")
        tmp.mkdir(exist_ok=True)
        os.chmod(tmp, 0o1777)

    def _write_accounts(self, user: str, uid: int, gid: int, home: str, sudo: bool) -> None:
        """The image's /etc/passwd, group, shadow and sudoers (the machine may have its
        own user at the same uid under another name)."""
        etc = self._up("/etc")
        etc.mkdir(parents=True, exist_ok=True)
        passwd = [
            ln
            for ln in Path("/etc/passwd").read_text().splitlines()
            if ln.split(":")[2] != str(uid)
        ]
        passwd.append(f"{user}:x:{uid}:{gid}:{user}:{home}:/bin/bash")
        (etc / "passwd").write_text("\n".join(passwd) + "\n")
        groups = []
        for ln in Path("/etc/group").read_text().splitlines():
            parts = ln.split(":")
            if parts[2] == str(gid):
                continue
            if parts[0] == "sudo" and sudo:
                parts[3] = ",".join(filter(None, [parts[3], user]))
            groups.append(":".join(parts))
        groups.append(f"{user}:x:{gid}:")
        (etc / "group").write_text("\n".join(groups) + "\n")
        shadow = [
            ln
            for ln in Path("/etc/shadow").read_text().splitlines()
            if ln.split(":")[0] != user and ln.split(":")[0] in {p.split(":")[0] for p in passwd}
        ]
        shadow.append(f"{user}:*:19000:0:99999:7:::")
        (etc / "shadow").write_text("\n".join(shadow) + "\n")
        os.chmod(etc / "shadow", 0o640)
        sudoers = "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n"
        if sudo:
            sudoers += "%sudo ALL=(ALL) NOPASSWD:ALL\n"
        (etc / "sudoers").write_text(sudoers)
        os.chmod(etc / "sudoers", 0o440)
        self.sudo_gid = next(int(g.split(":")[2]) for g in groups if g.split(":")[0] == "sudo")

    # -- the pod's volumes --------------------------------------------------------------

    def _volume(self, vol: dict[str, Any]) -> Path:
        where = self.dir / "volumes" / vol["name"]
        where.mkdir()
        for kind, key in (("secret", "secretName"), ("configMap", "name")):
            if kind not in vol:
                continue
            src = vol[kind]
            obj = self.objects.get(("Secret" if kind == "secret" else "ConfigMap", src[key]))
            if obj is None:
                if src.get("optional"):
                    continue
                raise KeyError(f"volume {vol['name']}: no {kind} {src[key]} rendered")
            if kind == "secret":
                data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            else:
                data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                target = where / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[item["key"]])
                target.chmod(item.get("mode", src.get("defaultMode", 0o644)))
        if "hostPath" in vol and vol["hostPath"]["path"] in self.host_paths:
            return self.host_paths[vol["hostPath"]["path"]]
        if "hostPath" in vol:
            # What the kubelet does for DirectoryOrCreate: root-owned 0755.
            host = self.dir / "hostpaths" / vol["hostPath"]["path"].strip("/").replace("/", "_")
            host.mkdir(mode=0o755, exist_ok=True)
            os.chmod(host, 0o755)
            self.host_paths[vol["hostPath"]["path"]] = host
            return host
        return where

    def _inside(self, path: str) -> Path:
        """``path`` of the container as a mount target under root, symlinks of the image
        (/var/run -> /run) followed inside it, the mount point created in the upper layer."""
        parts = [p for p in path.split("/") if p]
        resolved: list[str] = []
        while parts:
            name = parts.pop(0)
            lower = Path("/", *resolved, name)
            upper = self._up("/" + "/".join([*resolved, name]))
            if not upper.exists() and lower.is_symlink():
                target = os.readlink(lower)
                base = [] if target.startswith("/") else list(resolved)
                parts = [p for p in target.split("/") if p] + parts
                resolved = base
                continue
            resolved.append(name)
        return Path("/", *resolved)

    def _mounts(self) -> list[list[Any]]:
        vols = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        wanted: list[tuple[str, Path, bool]] = []
        for vm in self.container.get("volumeMounts") or []:
            wanted.append(
                (vm["mountPath"], self._volume(vols[vm["name"]]), bool(vm.get("readOnly")))
            )
        if self.pod["spec"].get("automountServiceAccountToken") is not False:
            sa = self.dir / "volumes" / "kube-api-access"
            sa.mkdir()
            for name, data in (self.service_account or {}).items():
                (sa / name).write_bytes(data)
                (sa / name).chmod(0o644)
            wanted.append((SA_PATH, sa, True))
        out = []
        for path, source, read_only in sorted(wanted, key=lambda w: len(w[0])):
            inside = self._inside(path)
            point = self._up(str(inside))
            if source.is_dir():
                point.mkdir(parents=True, exist_ok=True)
            else:
                point.parent.mkdir(parents=True, exist_ok=True)
                point.touch()
            out.append([str(source), str(self.dir / "root") + str(inside), read_only])
        return out

    # -- the process ----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        f = self.facts
        env = {k: str(v) for k, v in (f.get("env") or {}).items()}
        env.update(
            PATH=":".join(p.rstrip("/") for p in f["path"]),
            HOME=f["home"],
            HOSTNAME=self.pod["metadata"]["name"],
        )
        env.update(self.extra_env)
        for e in self.container.get("env") or []:
            if "value" in e:
                env[e["name"]] = e["value"]
                continue
            ref = e["valueFrom"]
            if "fieldRef" in ref:
                env[e["name"]] = self.field_refs[ref["fieldRef"]["fieldPath"]]
            else:
                key = ref["secretKeyRef"]
                obj = self.objects[("Secret", key["name"])]
                env[e["name"]] = base64.b64decode(obj["data"][key["key"]]).decode()
        return env

    def start(self) -> subprocess.Popen[str]:
        """Start the container's command; its output is captured (text)."""
        f = self.facts
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = self.container.get("securityContext") or {}
        image = (f["uid"], f.get("gid", f["uid"]))
        uid = sc.get("runAsUser", pod_sc.get("runAsUser", image[0]))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", image[1]))
        cfg = {
            "root": str(self.dir / "root"),
            "upper": str(self.upper),
            "work": str(self.dir / "work"),
            "mounts": self._mounts(),
            "cwd": self.container.get("workingDir") or f["workdir"],
            "uid": uid,
            "gid": gid,
            "groups": [gid, self.sudo_gid] if (uid, gid) == image else [gid],
            **kubelet_privileges(sc),
            "argv": [*(self.container.get("command") or []), *(self.container.get("args") or [])],
            "env": self._env(),
        }
        (self.dir / "enter.json").write_text(json.dumps(cfg))
        (self.dir / "enter.py").write_text(_ENTER)
        self.proc = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                sys.executable,
                str(self.dir / "enter.py"),
                str(self.dir / "enter.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self.proc

    def run(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = self.start()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def read(self, path: str) -> bytes | None:
        """A file the container wrote (its upper layer), or None."""
        p = self._up(str(self._inside(path)))
        return p.read_bytes() if p.is_file() else None

    def launcher(self) -> dict[str, Any] | None:
        """What /opt/arkouda/arkouda_server recorded, or None if it never ran."""
        data = self.read(LAUNCHER_RECORD)
        return json.loads(data) if data else None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PodRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
