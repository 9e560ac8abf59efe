"""The process that sets up one sandboxed run, started by `warriorcoder.execution.sandbox`.

Run as ``python3 -I -S jail_launcher.py CONFIG_JSON`` with the program on stdin. It uses only
the standard library and never imports warriorcoder: it must start fast, and in the jail the
project's files are not visible.

Steps (each one only when CONFIG asks for it):

0. The launcher sets ``PDEATHSIG=SIGKILL`` (it dies with the sandbox's process) and reads
   the program; it forks nothing before that, so the sandbox can move it into the run's cgroup
   meanwhile and every process of the run inherits it.
1. ``unshare`` new mount, network, PID, IPC and UTS namespaces (plus a user namespace when
   not root), then fork: the child is PID 1 of the new PID namespace, so when it dies the
   kernel kills every process the program started, whatever process group they moved to.
2. PID 1 builds a root from an empty tmpfs: read-only, nosuid bind mounts of /usr and the
   interpreter's prefix, a few /etc files written fresh, /dev/null|zero|random|urandom, a
   private size-limited /dev/shm, a new /proc, and a size-limited tmpfs /tmp as the working
   directory. It then ``pivot_root``s into it and detaches the old root, so no path leads
   back to the host's files (a chroot would leave them reachable to a process that can
   chroot again).
3. PID 1 forks the program's process, which sets resource limits, drops to an unprivileged
   uid (when root), empties its capability sets (bounding, ambient, permitted, effective,
   inheritable), sets no_new_privs, installs a seccomp filter, and execs
   ``python3 -I -X utf8 /tmp/main.py`` with an empty environment and /dev/null as stdin.
4. PID 1 reaps every process until the program's process exits, then reports its wait
   status on the status pipe and exits, which ends the namespace.

Status pipe protocol (one line each): ``ok`` right before exec, ``error MESSAGE`` when the
sandbox could not be set up, ``exit N`` or ``signal N`` with the program's end.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import signal
import struct
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                   | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME)

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522

ETC_FILES_COPIED = ("ld.so.cache", "nsswitch.conf", "host.conf")
DEVICES = ("null", "zero", "random", "urandom")

# Per architecture (`uname -m`): the seccomp audit arch, pivot_root's number, and the numbers
# of the system calls the program may not make. Denied with EPERM: fileless memory that no
# limit counts (memfd), the kernel keyring (it outlives the run under a reused uid), reading
# or writing other processes, kernel interfaces a program never needs (bpf, perf, io_uring,
# userfaultfd, modules, kexec, swap, reboot, ...), and everything that builds or changes
# namespaces and mounts. clone3 gets ENOSYS, so the C library falls back to clone, whose flags
# the filter can see (clone with any namespace flag is denied).
_DENIED_NAMES = (
    "memfd_create", "memfd_secret", "keyctl", "add_key", "request_key", "ptrace",
    "process_vm_readv", "process_vm_writev", "kcmp", "perf_event_open", "bpf", "userfaultfd",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "name_to_handle_at", "open_by_handle_at", "fanotify_init",
    "swapon", "swapoff", "reboot", "acct", "quotactl", "syslog", "lookup_dcookie",
    "iopl", "ioperm", "modify_ldt", "uselib",
)
_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "memfd_create": 319, "memfd_secret": 447, "keyctl": 250, "add_key": 248,
        "request_key": 249, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "kcmp": 312, "perf_event_open": 298, "bpf": 321, "userfaultfd": 323, "mount": 165,
        "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176,
        "name_to_handle_at": 303, "open_by_handle_at": 304, "fanotify_init": 300,
        "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163, "quotactl": 179,
        "syslog": 103, "lookup_dcookie": 212, "iopl": 172, "ioperm": 173, "modify_ldt": 154,
        "uselib": 134, "clone": 56, "clone3": 435,
    },
    "aarch64": {
        "memfd_create": 279, "memfd_secret": 447, "keyctl": 219, "add_key": 217,
        "request_key": 218, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "kcmp": 272, "perf_event_open": 241, "bpf": 280, "userfaultfd": 282, "mount": 40,
        "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "name_to_handle_at": 264, "open_by_handle_at": 265, "fanotify_init": 262,
        "swapon": 224, "swapoff": 225, "reboot": 142, "acct": 89, "quotactl": 60,
        "syslog": 116, "lookup_dcookie": 18, "clone": 220, "clone3": 435,
    },
}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# x32 system calls on x86_64 carry this bit in their number; the program has no use for them.
_X32_SYSCALL_BIT = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(RuntimeError):
    """The sandbox could not be built; reported as `error ...` on the status pipe."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int, what: str) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), what)


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


def _die_with_parent(parent: int | None, alive_fd: int | None = None) -> None:
    """SIGKILL this process when its parent dies, and exit now if it already has.

    The parent may have died before the prctl, and then no signal would ever come: that is
    checked with `parent` (its pid) or, for PID 1 of a new PID namespace, which cannot see
    its parent's pid, with `alive_fd` (the read end of a pipe only the parent writes to).
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "prctl(PDEATHSIG)")
    if parent is not None and os.getppid() != parent:
        os._exit(125)
    if alive_fd is not None:
        readable, _, _ = select.select([alive_fd], [], [], 0)
        if readable:  # end of file: the parent's write end closed, so the parent is gone
            os._exit(125)
        os.close(alive_fd)


def _not_dumpable() -> None:
    """No process of the run, even one of our uid (non-root plain mode), may open our
    descriptors (the status pipe) or memory through /proc. Set before the first fork: children
    inherit it until they exec."""
    _prctl(PR_SET_DUMPABLE, 0, "prctl(SET_DUMPABLE)")


def _pivot_root(root: str, arch: str) -> None:
    """Make `root` the root of this mount namespace and detach the old one entirely.

    ``pivot_root(".", ".")`` stacks the old root on top of the new one; detaching it leaves
    no mount in this namespace that reaches the host's files.
    """
    os.chdir(root)
    _check(_libc.syscall(ctypes.c_long(_SYSCALLS[arch]["pivot_root"]), b".", b"."),
           "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")


def _build_root(cfg: dict[str, Any], code: bytes) -> None:
    """Mount the jail's file tree under cfg["root_dir"] and pivot into it (as PID 1)."""
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
    # multiprocessing's locks and queues (POSIX semaphores) and shared_memory live here.
    os.mkdir(f"{dev}/shm")
    _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
           f"size={cfg['shm_mb']}m,nr_inodes=1024,mode=700,uid={uid},gid={gid}")
    _mount("proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    tmp = os.path.join(root, "tmp")
    _mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV,
           # nr_inodes: empty files would hold kernel memory that the size limit ignores.
           f"size={cfg['tmp_mb']}m,nr_inodes=16384,mode=700,uid={uid},gid={gid}")
    _write_program(os.path.join(tmp, "main.py"), code, uid, gid)
    _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _pivot_root(root, cfg["arch"])
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
        resource.RLIMIT_MSGQUEUE: 0,
        # CPU seconds: a backstop should the parent's wall-clock timer never fire.
        resource.RLIMIT_CPU: cfg["cpu_s"],
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def _drop_bounding_set() -> None:
    """Empty the capability bounding set, so that no later exec can regain a capability
    (an exec as uid 0, which user-jail runs are inside their namespace, would get them all)."""
    cap = 0
    while True:
        if _libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            err = ctypes.get_errno()
            if err == errno.EINVAL:  # past the last capability this kernel knows
                return
            raise SetupError(f"prctl(CAPBSET_DROP, {cap}): {os.strerror(err)}")
        cap += 1


def _clear_capabilities() -> None:
    """Empty the ambient, permitted, effective and inheritable sets of this process."""
    cleared = _libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
    if cleared != 0 and ctypes.get_errno() != errno.EINVAL:  # EINVAL: no ambient sets
        raise SetupError(f"prctl(CAP_AMBIENT_CLEAR_ALL): {os.strerror(ctypes.get_errno())}")
    header = struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)  # two {effective, permitted, inheritable} u32 triples, all empty
    _check(_libc.capset(header, data), "capset")


def _check_no_capabilities(bounding_too: bool) -> None:
    """Refuse to run the program while any capability is left (the kernel's own view)."""
    wanted = ("CapInh", "CapPrm", "CapEff", "CapAmb") + (("CapBnd",) if bounding_too else ())
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in wanted and int(value, 16) != 0:
                raise SetupError(f"capabilities left after dropping them: {name} {value.strip()}")


def seccomp_program(arch: str) -> list[tuple[int, int, int, int]]:
    """The classic-BPF seccomp filter of the program, as (code, jt, jf, k) instructions."""
    numbers = _SYSCALLS[arch]
    ld_w_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, errno_ret = 0x7FFF0000, 0x00050000
    denied = sorted({numbers[name] for name in _DENIED_NAMES if name in numbers})
    # (code, label jumped to when true, label jumped to when false, k); "" = next instruction.
    prog: list[tuple[int, str, str, int] | str] = [
        (ld_w_abs, "", "", 4),  # seccomp_data.arch
        (jeq, "", "eperm", _AUDIT_ARCH[arch]),  # another ABI (i386 on x86_64): denied
        (ld_w_abs, "", "", 0),  # seccomp_data.nr
    ]
    if arch == "x86_64":
        prog.append((jge, "eperm", "", _X32_SYSCALL_BIT))
    prog += [(jeq, "eperm", "", nr) for nr in denied]
    prog += [
        (jeq, "enosys", "", numbers["clone3"]),
        (jeq, "clone", "", numbers["clone"]),
        (ret, "", "", allow),
        "clone",
        (ld_w_abs, "", "", 16),  # low half of args[0]: clone's flags on both arches
        (jset, "eperm", "", NAMESPACE_FLAGS),
        (ret, "", "", allow),
        "eperm",
        (ret, "", "", errno_ret | errno.EPERM),
        "enosys",
        (ret, "", "", errno_ret | errno.ENOSYS),
    ]
    labels: dict[str, int] = {}
    insns: list[tuple[int, str, str, int]] = []
    for item in prog:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)

    def offset(label: str, at: int) -> int:
        jump = labels[label] - at - 1 if label else 0
        if not 0 <= jump <= 255:
            raise SetupError(f"seccomp filter: jump to {label} out of range")
        return jump

    return [(code, offset(jt, i), offset(jf, i), k) for i, (code, jt, jf, k) in enumerate(insns)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _install_seccomp(arch: str) -> None:
    """Install the filter of `seccomp_program` (needs no_new_privs; kept across exec)."""
    prog = seccomp_program(arch)
    raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = _SockFprog(len(prog), ctypes.addressof(buf))
    _check(_libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER),
                       ctypes.byref(fprog), 0, 0), "prctl(SECCOMP)")


def _exec_program(cfg: dict[str, Any], status_fd: int, parent: int) -> None:
    """In the program's process: limits, drop privileges, filter, exec. Never returns."""
    try:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if not cfg["jail"]:
            os.chdir(cfg["work_dir"])
        _set_limits(cfg)
        privileged = os.geteuid() == 0  # root, or root of a user namespace
        if privileged:
            _drop_bounding_set()
        if cfg["drop_to_uid"]:
            os.setgroups([])
            os.setresgid(cfg["run_gid"], cfg["run_gid"], cfg["run_gid"])
            os.setresuid(cfg["run_uid"], cfg["run_uid"], cfg["run_uid"])
        _clear_capabilities()
        _check_no_capabilities(bounding_too=privileged)
        # Set after the uid change, which clears it; it survives the exec.
        _die_with_parent(parent)
        _prctl(PR_SET_NO_NEW_PRIVS, 1, "prctl(NO_NEW_PRIVS)")
        if cfg["arch"]:
            _install_seccomp(cfg["arch"])
        os.set_inheritable(status_fd, False)
        _report(status_fd, "ok")
        main = "/tmp/main.py" if cfg["jail"] else os.path.join(cfg["work_dir"], "main.py")
        # argv[0] is the interpreter's full path, so that sys.executable is a real file.
        os.execve(cfg["python"], [cfg["python"], "-I", "-X", "utf8", main], {})
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


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(pid) for pid in f.read().split()]
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN: scan every process
        found = []
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        found.append(int(name))
            except (OSError, ValueError, IndexError):
                continue
        return found


def _kill_descendants() -> None:
    """SIGKILL and reap every descendant (as a subreaper, orphans come back to us), round
    after round until none is left: a forking program races each round, within its limits."""
    while True:
        children = _children()
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in children:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


def _report_end(status_fd: int, status: int) -> int:
    if os.WIFSIGNALED(status):
        _report(status_fd, f"signal {os.WTERMSIG(status)}")
        return 128 + os.WTERMSIG(status)
    code = os.waitstatus_to_exitcode(status)
    _report(status_fd, f"exit {code}")
    return code


def run_init(cfg: dict[str, Any], code: bytes, status_fd: int, alive_fd: int) -> int:
    """PID 1 of the new namespaces: build the jail, run the program, reap, report."""
    _die_with_parent(None, alive_fd)
    _build_root(cfg, code)
    pid = os.fork()
    if pid == 0:
        _exec_program(cfg, status_fd, parent=1)
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
        _die_with_parent(int(cfg["parent_pid"]))
        code = sys.stdin.buffer.read()
        launcher = os.getpid()
        if not cfg["namespaces"]:
            with open(os.path.join(cfg["work_dir"], "main.py"), "wb") as f:
                f.write(code)
            if cfg["drop_to_uid"]:
                os.chown(os.path.join(cfg["work_dir"], "main.py"), cfg["run_uid"], cfg["run_gid"])
            # Orphans of the program (a setsid daemon included) become our children, so we
            # reap them and, once the program has ended, kill whatever of the run is left.
            _prctl(PR_SET_CHILD_SUBREAPER, 1, "prctl(CHILD_SUBREAPER)")
            _not_dumpable()
            pid = _fork_child()
            if pid == 0:
                _exec_program(cfg, status_fd, parent=launcher)
            killer.watch(pid)
            status = _wait_for(pid, reap_all=True)
            _kill_descendants()
            return _report_end(status_fd, status)
        flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
        outer_uid, outer_gid = os.getuid(), os.getgid()
        if cfg["user_namespace"]:
            flags |= CLONE_NEWUSER
        _check(_libc.unshare(flags), "unshare")
        if cfg["user_namespace"]:
            _write_id_maps(outer_uid, outer_gid)  # before _not_dumpable: /proc/self turns root's
        _not_dumpable()
        alive_r, alive_w = os.pipe()
        pid = _fork_child()
        if pid == 0:
            try:
                os.close(alive_w)
                os._exit(run_init(cfg, code, status_fd, alive_r))
            except BaseException as err:  # noqa: BLE001 - reported, then exit
                _report(status_fd, f"error {type(err).__name__}: {err}")
                os._exit(125)
        os.close(alive_r)  # alive_w stays open until this process ends
        killer.watch(pid)
        _, status = os.waitpid(pid, 0)
        # PID 1 already reported the program's end; mirror it in our own exit code.
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 125
    except BaseException as err:  # noqa: BLE001 - reported, then exit
        _report(status_fd, f"error {type(err).__name__}: {err}")
        return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv))
