"""The process that sets up one sandboxed run, started by `warriorcoder.execution.sandbox`.

Run as ``python3 -I -S jail_launcher.py CONFIG_JSON`` with the program on stdin. It uses only
the standard library and never imports warriorcoder: it must start fast, and in the jail the
project's files are not visible.

Steps (each one only when CONFIG asks for it):

1. ``unshare`` new mount, network, PID, IPC and UTS namespaces (plus a user namespace when
   not root), then fork: the child is PID 1 of the new PID namespace, so when it dies the
   kernel kills every process the program started, whatever process group they moved to.
2. PID 1 builds a root from an empty tmpfs: read-only, nosuid bind mounts of /usr and the
   interpreter's prefix, a few /etc files written fresh, /dev/null|zero|random|urandom, a new
   /proc, and a size-limited tmpfs /tmp as the working directory. It then chroots into it.
3. PID 1 forks the program's process, which sets resource limits, drops to an unprivileged
   uid (when root), sets no_new_privs, and execs ``python3 -I -X utf8 /tmp/main.py`` with an
   empty environment and /dev/null as stdin.
4. PID 1 reaps every process until the program's process exits, then reports its wait
   status on the status pipe and exits, which ends the namespace.

Status pipe protocol (one line each): ``ok`` right before exec, ``error MESSAGE`` when the
sandbox could not be set up, ``exit N`` or ``signal N`` with the program's end.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

ETC_FILES_COPIED = ("ld.so.cache", "nsswitch.conf", "host.conf")
DEVICES = ("null", "zero", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(RuntimeError):
    """The sandbox could not be built; reported as `error ...` on the status pipe."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _bind_read_only(source: str, target: str) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    # A bind mount ignores MS_RDONLY on creation: read-only needs a remount.
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _report(fd: int, line: str) -> None:
    os.write(fd, (line.replace("\n", " ") + "\n").encode())


def _write_id_maps(uid: int, gid: int) -> None:
    """Map root of a new user namespace to the caller (the non-root path)."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _build_root(cfg: dict[str, Any], code: bytes) -> None:
    """Mount the jail's file tree under cfg["root_dir"] and chroot into it (as PID 1)."""
    root = cfg["root_dir"]
    uid, gid = cfg["run_uid"], cfg["run_gid"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates to the host
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    for name in ("usr", "etc", "dev", "proc", "tmp"):
        os.mkdir(os.path.join(root, name))
    for path in cfg["read_only_paths"]:
        inside = os.path.join(root, path.lstrip("/"))
        os.makedirs(inside, exist_ok=True)
        _bind_read_only(path, inside)
    for name in ("bin", "lib", "lib32", "lib64", "sbin"):
        host = f"/{name}"
        if os.path.islink(host):  # merged-/usr systems: /bin -> usr/bin
            os.symlink(os.readlink(host), os.path.join(root, name))
        elif os.path.isdir(host) and host not in cfg["read_only_paths"]:
            os.mkdir(os.path.join(root, name))
            _bind_read_only(host, os.path.join(root, name))
    # /etc is written fresh: the host's users, hosts and configs stay out.
    etc = os.path.join(root, "etc")
    for name in ETC_FILES_COPIED:
        if os.path.isfile(f"/etc/{name}"):
            with open(f"/etc/{name}", "rb") as src, open(f"{etc}/{name}", "wb") as dst:
                dst.write(src.read())
    if os.path.exists("/etc/localtime"):
        os.symlink(os.path.realpath("/etc/localtime"), f"{etc}/localtime")
    with open(f"{etc}/passwd", "w") as f:
        f.write(f"root:x:0:0:root:/:/bin/false\nsandbox:x:{uid}:{gid}:sandbox:/tmp:/bin/false\n")
    with open(f"{etc}/group", "w") as f:
        f.write(f"root:x:0:\nsandbox:x:{gid}:\n")
    with open(f"{etc}/hosts", "w") as f:
        f.write("127.0.0.1 localhost\n")
    dev = os.path.join(root, "dev")
    for name in DEVICES:
        open(f"{dev}/{name}", "w").close()
        _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")
    _mount("proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    tmp = os.path.join(root, "tmp")
    _mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={cfg['tmp_mb']}m,mode=700,uid={uid},gid={gid}")
    _write_program(os.path.join(tmp, "main.py"), code, uid, gid)
    _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(root)
    os.chdir("/tmp")
    _check(_libc.sethostname(b"sandbox", 7), "sethostname")


def _write_program(path: str, code: bytes, uid: int, gid: int) -> None:
    with open(path, "wb") as f:
        f.write(code)
    if os.geteuid() == 0:
        os.chown(path, uid, gid)


def _set_limits(cfg: dict[str, Any]) -> None:
    mb = 1024 * 1024
    limits = {
        resource.RLIMIT_AS: cfg["memory_mb"] * mb,
        resource.RLIMIT_NPROC: cfg["max_processes"],
        resource.RLIMIT_FSIZE: cfg["file_mb"] * mb,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_MEMLOCK: 0,
        # CPU seconds: a backstop should the parent's wall-clock timer never fire.
        resource.RLIMIT_CPU: cfg["cpu_s"],
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def _exec_program(cfg: dict[str, Any], status_fd: int) -> None:
    """In the program's process: limits, drop privileges, exec. Never returns."""
    try:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if not cfg["jail"]:
            os.chdir(cfg["work_dir"])
        _set_limits(cfg)
        if cfg["drop_to_uid"]:
            os.setgroups([])
            os.setresgid(cfg["run_gid"], cfg["run_gid"], cfg["run_gid"])
            os.setresuid(cfg["run_uid"], cfg["run_uid"], cfg["run_uid"])
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        os.set_inheritable(status_fd, False)
        _report(status_fd, "ok")
        main = "/tmp/main.py" if cfg["jail"] else os.path.join(cfg["work_dir"], "main.py")
        os.execve(cfg["python"], ["python3", "-I", "-X", "utf8", main], {})
    except BaseException as err:  # noqa: BLE001 - any failure here is a sandbox error
        _report(status_fd, f"error program start: {type(err).__name__}: {err}")
    os._exit(125)


def _wait_for(pid: int, reap_all: bool) -> int:
    """Wait status of `pid`; as PID 1 also reap orphans (they would stay zombies)."""
    while True:
        try:
            done, status = os.waitpid(-1 if reap_all else pid, 0)
        except ChildProcessError:
            raise SetupError("program process vanished") from None
        if done == pid:
            return status


def _report_end(status_fd: int, status: int) -> int:
    if os.WIFSIGNALED(status):
        _report(status_fd, f"signal {os.WTERMSIG(status)}")
        return 128 + os.WTERMSIG(status)
    code = os.waitstatus_to_exitcode(status)
    _report(status_fd, f"exit {code}")
    return code


def run_init(cfg: dict[str, Any], code: bytes, status_fd: int) -> int:
    """PID 1 of the new namespaces: build the jail, run the program, reap, report."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    _build_root(cfg, code)
    pid = os.fork()
    if pid == 0:
        _exec_program(cfg, status_fd)
    return _report_end(status_fd, _wait_for(pid, reap_all=True))


class _ChildKiller:
    """SIGTERM from the sandbox (its timeout) kills our child; we still wait for it, so that
    when we exit every process of the run is gone (PID 1 exits only after its namespace).

    Installed before the fork: a SIGTERM that arrives before the child exists is remembered
    and acted on as soon as the child's pid is known.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.requested = False
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.requested = True
        self._kill()

    def _kill(self) -> None:
        if self.pid is not None and self.requested:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def watch(self, pid: int) -> None:
        self.pid = pid
        self._kill()


def _fork_child() -> int:
    """fork(); the child goes back to SIGTERM's default action."""
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return pid


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[1])
    status_fd = int(cfg["status_fd"])
    killer = _ChildKiller()
    try:
        code = sys.stdin.buffer.read()
        if not cfg["namespaces"]:
            with open(os.path.join(cfg["work_dir"], "main.py"), "wb") as f:
                f.write(code)
            if cfg["drop_to_uid"]:
                os.chown(os.path.join(cfg["work_dir"], "main.py"), cfg["run_uid"], cfg["run_gid"])
            pid = _fork_child()
            if pid == 0:
                _exec_program(cfg, status_fd)
            killer.watch(pid)
            return _report_end(status_fd, _wait_for(pid, reap_all=False))
        flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
        outer_uid, outer_gid = os.getuid(), os.getgid()
        if cfg["user_namespace"]:
            flags |= CLONE_NEWUSER
        _check(_libc.unshare(flags), "unshare")
        if cfg["user_namespace"]:
            _write_id_maps(outer_uid, outer_gid)
        pid = _fork_child()
        if pid == 0:
            try:
                os._exit(run_init(cfg, code, status_fd))
            except BaseException as err:  # noqa: BLE001 - reported, then exit
                _report(status_fd, f"error {type(err).__name__}: {err}")
                os._exit(125)
        killer.watch(pid)
        _, status = os.waitpid(pid, 0)
        # PID 1 already reported the program's end; mirror it in our own exit code.
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 125
    except BaseException as err:  # noqa: BLE001 - reported, then exit
        _report(status_fd, f"error {type(err).__name__}: {err}")
        return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv))
