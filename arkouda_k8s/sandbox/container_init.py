"""Starts one sandbox container: its own mount (and UTS) namespace over an image model.

The kubelet runs this file as root, as a script (standard library only, no package
imports: it runs once per container start and must be cheap), with the container's
plan as JSON on the pipe named by its first argument and a status socket named by the second. It does what runc does for a real
container, minus cgroups and network namespaces:

1. a private mount namespace and a UTS namespace (hostname = pod name);
2. an overlay root: the image model's layer over this machine's root, with a writable
   layer per container (so the image's files are there, and writes stay in the pod);
3. /proc, /sys, /dev, a fresh /dev/shm; the pod's /etc/hosts, /etc/hostname and
   /etc/resolv.conf (and sshd_config for images with sshd) bound over the image's;
4. every volume bound at its mountPath over that view, read-only when asked, so a
   volume mounted over an image directory hides it exactly as containerd would;
5. chroot, the working directory (created if missing, as runc does), the capability
   bounding set the securityContext leaves (the runtime's default set, minus ``drop``,
   plus ``add``), the image's user and groups, no_new_privs when
   ``allowPrivilegeEscalation`` is false (sudo then refuses, as in a real pod), then exec
   of the command *as given*, found through the container's PATH.

First the status socket carries the new mount namespace (a descriptor the kubelet keeps).
If anything fails before the exec, the reason follows in the words of a real runtime and
the process exits 128; on a successful exec the socket closes (close-on-exec), which is
how the kubelet knows the container started.

``kubectl exec`` and exec probes start here too (a plan with ``enter``: the pid of the
container's main process, and no status socket), as ``runc exec`` runs a new process
with the container's own process spec: the container's namespaces and root replace
steps 1 to 4, then step 5 is the same (working directory, capabilities, no_new_privs,
user and groups, environment). A failure before the exec is written to stderr in
runc's words, exit code 126.
"""

import ctypes
import json
import os
import socket
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src, dst, fstype=None, flags=0, data=None):
    _check(
        _libc.mount(
            src.encode() if src else None,
            dst.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {src} on {dst}",
    )


def bind(src, dst, readonly=False, recursive=False):
    mount(src, dst, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | (MS_REC if recursive else 0))


def secure_join(root, path):
    """``path`` resolved inside ``root``: symlinks are followed as if ``root`` were "/".

    No component, however it is linked, leads outside ``root`` (a volume or an image
    cannot make the kubelet mount over this machine's files).
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(40, f"too many levels of symbolic links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mountpoint(target, source_is_dir):
    """Create what a bind mount needs at ``target`` (inside the writable container root)."""
    if os.path.lexists(target):
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if source_is_dir:
        os.mkdir(target, 0o755)
    else:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))


def build_root(plan):
    root = plan["root"]
    lower = ":".join([*plan["layers"], "/"])
    mount(
        "overlay",
        root,
        "overlay",
        0,
        f"lowerdir={lower},upperdir={plan['upper']},workdir={plan['work']}",
    )
    bind("/proc", os.path.join(root, "proc"), recursive=True)
    bind("/sys", os.path.join(root, "sys"), recursive=True)
    bind("/dev", os.path.join(root, "dev"))
    bind("/dev/pts", os.path.join(root, "dev/pts"))
    mount(
        "shm", os.path.join(root, "dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k"
    )
    for m in plan["mounts"]:
        src = m["source"]
        is_dir = stat.S_ISDIR(os.stat(src).st_mode)
        target = secure_join(root, m["path"])
        if os.path.isdir(target) != is_dir and os.path.lexists(target):
            kind = "directory" if is_dir else "file"
            raise OSError(
                20,
                f'error mounting "{src}" to rootfs at "{m["path"]}": cannot mount a {kind} '
                f"over a {'file' if is_dir else 'directory'}: not a directory",
            )
        _mountpoint(target, is_dir)
        bind(src, target, readonly=m.get("readOnly", False), recursive=is_dir)


def find_program(name, path):
    if "/" in name:
        return name if os.path.exists(name) else None
    for d in path.split(":"):
        full = os.path.join(d or ".", name)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return full
    return None


def limit_privileges(plan):
    """The capability bounding set and no_new_privs of the plan (before the user switch:
    dropping from the bounding set needs CAP_SETPCAP, which the switch takes away).

    A root process's exec gets exactly the bounding set (its inheritable and ambient sets
    are empty); a process of another user gets nothing, as with a real runtime (Kubernetes
    sets no ambient capabilities).
    """
    keep = plan.get("capabilities")
    if keep is not None:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient")
        for cap in range(last + 1):
            if cap not in keep:
                _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    if plan.get("no_new_privs"):
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def create_container(plan, status):
    """Steps 1 to 4: a new mount and UTS namespace, the container's root, its mounts."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    # The kubelet holds the namespace by this descriptor until it has swept it, so
    # its inode number (the container's identity) cannot pass to another container.
    ns = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    socket.send_fds(status, [b"n"], [ns])
    os.close(ns)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    host = plan["hostname"].encode()
    _check(_libc.sethostname(host, len(host)), "sethostname")
    build_root(plan)
    os.chroot(plan["root"])


def enter_container(pid):
    """Into the namespaces and root of a running container (its main process ``pid``)."""
    proc = f"/proc/{pid}"
    # Every descriptor before the first setns: /proc is this machine's only until then.
    uts = os.open(f"{proc}/ns/uts", os.O_RDONLY)
    mnt = os.open(f"{proc}/ns/mnt", os.O_RDONLY)
    root = os.open(f"{proc}/root", os.O_RDONLY | os.O_DIRECTORY)
    _check(_libc.setns(uts, CLONE_NEWUTS), "setns uts")
    _check(_libc.setns(mnt, CLONE_NEWNS), "setns mnt")
    os.fchdir(root)
    os.chroot(".")
    for fd in (uts, mnt, root):
        os.close(fd)


def start_process(plan):
    """Step 5, for a container's main process and for every exec into it alike."""
    os.chdir("/")
    cwd = plan["cwd"]
    if not os.path.isdir(cwd):
        os.makedirs(cwd, exist_ok=True)
    limit_privileges(plan)
    os.setgroups(plan["groups"])
    os.setgid(plan["gid"])
    os.setuid(plan["uid"])
    os.chdir(cwd)
    argv = plan["argv"]
    env = plan["env"]
    program = find_program(argv[0], env.get("PATH", ""))
    if program is None:
        what = (
            "no such file or directory" if "/" in argv[0] else "executable file not found in $PATH"
        )
        raise LookupError(f'exec: "{argv[0]}": {what}')
    os.execve(program, argv, env)


def main():
    plan_fd = int(sys.argv[1])
    with os.fdopen(plan_fd, "rb") as f:
        plan = json.load(f)
    if "enter" in plan:
        try:
            enter_container(plan["enter"])
            start_process(plan)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none escapes
            sys.stderr.write(
                "OCI runtime exec failed: exec failed: unable to start container process: "
                f"{exc}: unknown\n"
            )
            sys.stderr.flush()
        os._exit(126)
    status = socket.socket(fileno=int(sys.argv[2]))
    status.set_inheritable(False)
    try:
        create_container(plan, status)
        start_process(plan)
    except LookupError as exc:
        msg = f"unable to start container process: {exc}: unknown"
    except PermissionError as exc:
        msg = f"unable to start container process: {exc}: unknown"
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none escapes
        msg = f"runc create failed: unable to start container process: {exc}: unknown"
    status.sendall(msg.encode())
    os._exit(128)


if __name__ == "__main__":
    main()
