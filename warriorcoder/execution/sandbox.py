"""Run untrusted Python (code from model answers) in a sandbox, with limits.

Each run is a fresh ``python3 -I -X utf8`` process with an empty environment, /dev/null as
stdin, resource limits (address space, processes, file size, CPU, open files, no core dumps),
no capabilities, a seccomp filter, a throwaway working directory, its own process group, and a
wall-clock timeout after which everything it started is killed. stdout and stderr are captured
and truncated. The launcher dies with its parent, and leftovers of dead parents are swept.

Where the machine allows it (root, or unprivileged user namespaces), the run also gets new
mount, network, PID, IPC and UTS namespaces: no network at all, no view of other processes, and
a file tree built from read-only /usr and the interpreter (pivot_root, the old root detached),
so the project's files, /root, /home, /work and the host's /tmp do not exist for it. As root
the program runs under a per-run unprivileged uid, which makes the process limit real and file
permissions meaningful, and in a per-run cpu cgroup where one can be made.

The first use probes the strongest mode that works here; `sandbox_info()` records the mode,
the active protections and why stronger modes were rejected. Runs fail closed: a run whose
mode is weaker than its `SandboxLimits.min_isolation` is refused (`SandboxUnavailable`), never
run weaker. docs/sandbox.md says what each mode does and does not protect against.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("jail_launcher.py")
# Largest file the program may write, and the size of its /tmp in the jail.
FILE_LIMIT_MB = 16
TMP_SIZE_MB = 64
# Size of the jail's private /dev/shm (multiprocessing's semaphores, shared_memory).
SHM_SIZE_MB = 64
# Per-run uids: a range no real account uses, one block of slots per parent process.
UID_BASE = 2_000_000_000
UID_SLOTS = 64
# After the program ended, how long to wait for the rest of its output.
DRAIN_S = 0.5
# How long the launcher may take to end a run before its whole process group is killed.
LAUNCHER_GRACE_S = 5.0
_REASON_CHARS = 300


class RunStatus(enum.StrEnum):
    """How a sandboxed run ended."""

    PASSED = "passed"  # exit code 0
    FAILED = "failed"  # non-zero exit: an uncaught exception (AssertionError, ...) or sys.exit(n)
    TIMEOUT = "timeout"  # still running at the wall-clock limit; killed
    KILLED = "killed"  # killed by a signal or stopped by a resource limit (memory, CPU)
    ERROR = "error"  # the sandbox itself could not run the program


class SandboxMode(enum.StrEnum):
    """How runs are isolated, strongest first (`sandbox_info()` says which one is in use)."""

    # Namespaces + chroot into a read-only tree + a per-run unprivileged uid (needs root).
    JAIL = "jail"
    # The same inside an unprivileged user namespace (non-root); the uid stays the caller's.
    USER_JAIL = "user-jail"
    # No namespaces: limits, process group, temp dir, and a per-run uid when root.
    PLAIN = "plain"


# Strongest first: a run may use any mode at least as strong as its `min_isolation`.
ISOLATION_ORDER: tuple[SandboxMode, ...] = (SandboxMode.JAIL, SandboxMode.USER_JAIL,
                                            SandboxMode.PLAIN)


def at_least(mode: SandboxMode, minimum: SandboxMode) -> bool:
    """Whether `mode` isolates at least as strongly as `minimum` (jail > user-jail > plain)."""
    return ISOLATION_ORDER.index(mode) <= ISOLATION_ORDER.index(minimum)


class SandboxUnavailable(RuntimeError):
    """No isolation as strong as the required minimum can be set up: nothing was run."""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run. `max_processes` counts every process and thread of the run.

    `min_isolation` is the weakest mode the run may use: a run that would get less is refused
    with `SandboxUnavailable` (fail closed), never run weaker.
    """

    timeout_s: float = 10.0
    memory_mb: int = 512
    max_processes: int = 16
    max_output_chars: int = 2000
    min_isolation: SandboxMode = SandboxMode.JAIL

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "min_isolation", SandboxMode(self.min_isolation))
        except ValueError:
            raise ValueError(f"SandboxLimits.min_isolation must be one of "
                             f"{[m.value for m in ISOLATION_ORDER]}, "
                             f"got {self.min_isolation!r}") from None
        if not self.timeout_s > 0:
            raise ValueError(f"SandboxLimits.timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 32:
            raise ValueError(f"SandboxLimits.memory_mb must be >= 32 (Python's own start-up "
                             f"needs it), got {self.memory_mb}")
        if self.max_processes < 1:
            raise ValueError(f"SandboxLimits.max_processes must be >= 1, got {self.max_processes}")
        if self.max_output_chars < 1:
            raise ValueError(
                f"SandboxLimits.max_output_chars must be >= 1, got {self.max_output_chars}")


class TestStatus(enum.StrEnum):
    """How one test of a `run_tests` run ended (see warriorcoder/execution/harness.py)."""

    __test__ = False  # a result type, not a test class for pytest

    PASSED = "passed"
    FAILED = "failed"  # an assert failed
    ERROR = "error"  # another exception, the answer process died, or the test did not run
    TIMEOUT = "timeout"  # the run's time limit was reached during this test


@dataclass(frozen=True)
class TestResult:
    """One test of a `run_tests` run: its name, how it ended, and a one-line message."""

    __test__ = False  # a result type, not a test class for pytest

    name: str
    status: TestStatus
    message: str = ""


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run. `reason` is one line ("" when passed); `isolation` is the
    mode the run had (None when no sandbox ran it, e.g. a stand-in in tests).

    `tests` holds the harness's per-test results of a `run_tests` run (empty for
    `run_python`, and when the harness wrote no record); `tests_total` may exceed
    `len(tests)` when a very long record was shortened.
    """

    status: RunStatus
    reason: str
    stdout: str
    stderr: str
    duration_s: float
    exit_code: int | None
    isolation: SandboxMode | None = None
    tests: tuple[TestResult, ...] = ()
    tests_passed: int = 0
    tests_total: int = 0

    @property
    def passed(self) -> bool:
        return self.status is RunStatus.PASSED


# What every mode gets, then what each mode adds (see docs/sandbox.md, which explains each).
_COMMON = (
    "empty-environment", "isolated-interpreter", "resource-limits", "process-group-kill",
    "throwaway-directory", "no-new-privileges", "no-capabilities", "dies-with-parent",
)
PROTECTIONS: dict[SandboxMode, tuple[str, ...]] = {
    SandboxMode.JAIL: (
        *_COMMON, "unprivileged-uid", "process-limit", "network-namespace", "pid-namespace",
        "mount-namespace", "ipc-namespace", "uts-namespace", "read-only-file-tree",
        "pivot-root", "private-dev-shm",
    ),
    SandboxMode.USER_JAIL: (
        *_COMMON, "user-namespace", "network-namespace", "pid-namespace", "mount-namespace",
        "ipc-namespace", "uts-namespace", "read-only-file-tree", "pivot-root",
        "private-dev-shm",
    ),
    # As root, plain runs always get a per-run uid (or do not run at all).
    SandboxMode.PLAIN: _COMMON,
}


@dataclass(frozen=True)
class SandboxInfo:
    """The isolation in use: its mode, active protections, and why stronger modes failed."""

    mode: SandboxMode
    protections: tuple[str, ...]
    rejected: tuple[str, ...] = field(default=())


def base_interpreter() -> tuple[str, str]:
    """The base interpreter (not a venv's: the venv lives in the project) and its prefix."""
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable) or sys.executable)
    return exe, os.path.realpath(sys.base_prefix)


def drops_uid(mode: SandboxMode) -> bool:
    """Whether runs in `mode` get their own unprivileged uid (only root can switch uids).

    As root, jail and plain runs always do: a plain run whose interpreter other users cannot
    execute (e.g. pyenv under /root) is refused rather than run as root.
    """
    return os.geteuid() == 0 and mode is not SandboxMode.USER_JAIL


def _reachable_by_others(path: str) -> bool:
    """True when any user may execute `path` (and traverse every folder above it)."""
    current = Path(path)
    if not os.stat(current).st_mode & 0o001:
        return False
    return all(os.stat(parent).st_mode & 0o001 for parent in current.parents)


def seccomp_arch() -> str | None:
    """The architecture whose system-call filter the launcher installs (None: no filter)."""
    machine = os.uname().machine
    return machine if machine in ("x86_64", "aarch64") else None


def protections_of(mode: SandboxMode) -> tuple[str, ...]:
    """Names of the protections that runs in `mode` get on this machine."""
    found = PROTECTIONS[mode]
    if mode is SandboxMode.PLAIN and drops_uid(mode):
        found += ("unprivileged-uid", "process-limit", "uid-sweep")
    if seccomp_arch() is not None:
        found += ("syscall-filter",)
    if _cgroups.available():
        found += ("cpu-fair-share",)
    return found


class _UidPool:
    """Hands out one unused uid per concurrent run, so each run's process limit is its own."""

    def __init__(self) -> None:
        self._base = UID_BASE + (os.getpid() % 1_000_000) * UID_SLOTS
        self._free = list(range(UID_SLOTS))
        self._cond = threading.Condition()

    def acquire(self) -> int:
        with self._cond:
            while not self._free:
                self._cond.wait()
            return self._base + self._free.pop(0)  # oldest first: its zombies are gone

    def release(self, uid: int) -> None:
        with self._cond:
            self._free.append(uid - self._base)
            self._cond.notify()


def _start_time(pid: int) -> int | None:
    """Start time of process `pid` (clock ticks since boot), None when it does not exist.

    A pid and its start time name one process for good: pids are reused, the pair is not.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 22; the command name (field 2, in parentheses) may itself hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


# The name of a run's scratch folder and cgroup: the owner (pid and start time) and the uid.
_OWNED = re.compile(r"^wc-sandbox-(\d+)\.(\d+)\.(\d+)-")


def _owner_tag(uid: int) -> str:
    pid = os.getpid()
    return f"wc-sandbox-{pid}.{_start_time(pid)}.{uid}-"


def _owner_gone(name: str) -> tuple[bool, int]:
    """(whether the process that made `name` has ended, the run's uid); (False, -1) when the
    name is not one of ours."""
    match = _OWNED.match(name)
    if not match:
        return False, -1
    pid, start, uid = (int(g) for g in match.groups())
    return _start_time(pid) != start, uid


class _CpuCgroups:
    """A cpu cgroup per run, where the cgroup v1 cpu controller is writable (root).

    Each run's cgroup has the default weight, so concurrent runs share the CPU equally however
    many processes each starts (a run of 16 spinners gets what a run of one process gets).
    Without it, each process (or each session, with the kernel's autogroups) competes alone.
    """

    def __init__(self) -> None:
        self._parent: str | None = None
        self._probed = False
        self.reason = ""
        self._lock = threading.Lock()

    def available(self) -> bool:
        with self._lock:
            if not self._probed:
                self._probed = True
                self._parent, self.reason = _find_cpu_cgroup()
            return self._parent is not None

    def create(self, name: str) -> str | None:
        """A new cgroup for one run (None when per-run cgroups are not available)."""
        if not self.available():
            return None
        assert self._parent is not None
        path = os.path.join(self._parent, name)
        os.mkdir(path)
        return path

    def parent(self) -> str | None:
        return self._parent if self.available() else None


def _find_cpu_cgroup() -> tuple[str | None, str]:
    """The writable cgroup v1 cpu folder of this process, or (None, why not)."""
    if os.geteuid() != 0:
        return None, "not root"
    mount = None
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if fields[2] == "cgroup" and "cpu" in fields[3].split(","):
                    mount = fields[1]
                    break
        own = None
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "cpu" in controllers.split(","):
                    own = path
    except OSError as err:
        return None, f"cannot read cgroups: {err}"
    if mount is None or own is None:
        return None, "no cgroup v1 cpu controller"
    parent = os.path.join(mount, own.lstrip("/"))
    probe = os.path.join(parent, f"wc-sandbox-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as err:
        return None, f"cgroup {parent} is not writable: {err.strerror}"
    return parent, ""


def _remove_cgroup(path: str) -> None:
    """Remove a run's cgroup; its last processes may take a moment to leave it."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
    log.warning("sandbox: cgroup %s still busy; the next start sweeps it", path)


_uids = _UidPool()
_cgroups = _CpuCgroups()
_info: SandboxInfo | None = None
_info_lock = threading.Lock()


def sandbox_info() -> SandboxInfo:
    """The sandbox mode of this machine (probed once, on first use) and its protections.

    The first call also sweeps what runs of dead processes left behind (see `sweep_stale`).
    """
    global _info
    with _info_lock:
        if _info is None:
            swept = sweep_stale()
            if swept:
                log.info("sandbox: swept %d scratch folder(s)/cgroup(s) of ended processes",
                         swept)
            _info = _probe_modes()
            if _info.rejected:
                log.warning("sandbox: using mode %r; rejected: %s", _info.mode.value,
                            "; ".join(_info.rejected))
        return _info


def sandbox_protections() -> tuple[str, ...]:
    """Names of the protections active for runs on this machine (see docs/sandbox.md)."""
    return sandbox_info().protections


def require_isolation(minimum: SandboxMode | str) -> SandboxInfo:
    """The sandbox's info when its mode is at least `minimum`; else `SandboxUnavailable`
    naming what failed. Call it at start-up: a judge refuses to start rather than run weaker.
    """
    minimum = SandboxMode(minimum)
    try:
        info = sandbox_info()
    except RuntimeError as err:  # no mode at all works here
        detail = str(err).removeprefix("sandbox: " + _NO_MODE)
        raise SandboxUnavailable(
            f"sandbox: min_isolation={minimum.value} but {_NO_MODE}{detail}") from None
    if not at_least(info.mode, minimum):
        failed = [r for r in info.rejected if at_least(SandboxMode(r.split(":", 1)[0]), minimum)]
        raise SandboxUnavailable(
            f"sandbox: min_isolation={minimum.value} but "
            f"{'; '.join(failed) or minimum.value + ' failed'}; the strongest mode that works "
            f"here is {info.mode.value}: set execution.min_isolation={info.mode.value} to "
            "allow weaker isolation")
    return info


_NO_MODE = "no sandbox mode works on this machine: "


def sweep_stale() -> int:
    """Remove scratch folders and cgroups of runs whose process has ended (it was killed
    before cleaning up), after killing any process left under their per-run uid.

    Only names written by this module count (`wc-sandbox-PID.START.UID-...`), and only when
    process PID with that start time is gone. Returns how many it removed.
    """
    places = [tempfile.gettempdir()]
    parent = _cgroups.parent()
    if parent is not None:
        places.append(parent)
    live_uids: set[int] = set()
    stale: list[tuple[str, int, bool]] = []
    for place in places:
        try:
            entries = list(os.scandir(place))
        except OSError:
            continue
        for entry in entries:
            gone, uid = _owner_gone(entry.name)
            if uid < 0:
                continue
            try:
                # Ours: a real folder made by a sandbox of our uid (plain mode hands it to the
                # run's uid). A program may plant look-alike names in a shared /tmp.
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not entry.is_dir(follow_symlinks=False) or info.st_uid not in (os.geteuid(), uid):
                continue
            if gone:
                stale.append((entry.path, uid, place == parent))
            else:
                live_uids.add(uid)
    for path, uid, is_cgroup in stale:
        # A reused uid block may belong to a live run now: never kill that one's processes.
        if os.geteuid() == 0 and uid >= UID_BASE and uid not in live_uids:
            kill_uid_processes(uid)
        if is_cgroup:
            _remove_cgroup(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def _probe_modes() -> SandboxInfo:
    rejected: list[str] = []
    if os.geteuid() == 0:
        candidates = [SandboxMode.JAIL, SandboxMode.PLAIN]
    else:
        candidates = [SandboxMode.USER_JAIL, SandboxMode.PLAIN]
        rejected.append(f"{SandboxMode.JAIL.value}: needs root (running as uid {os.geteuid()})")
    probe = "import os, sys\nprint('probe', os.getcwd(), sys.flags.isolated)\n"
    for mode in candidates:
        result = _run(probe, SandboxLimits(timeout_s=30.0), mode)
        if result.passed and result.stdout.startswith("probe"):
            return SandboxInfo(mode, protections_of(mode), tuple(rejected))
        rejected.append(f"{mode.value}: {result.status.value}: {result.reason}")
    raise RuntimeError("sandbox: " + _NO_MODE + "; ".join(rejected))


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), *,
               mode: SandboxMode | None = None) -> RunResult:
    """Run the Python program `code` in the sandbox and wait for it (thread-safe).

    `mode` forces an isolation mode (default: the strongest that works, see `sandbox_info`).
    Raises `SandboxUnavailable`, running nothing, when the mode is weaker than
    `limits.min_isolation`.
    """
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    return _run(code, limits, resolve_mode(limits, mode))


def resolve_mode(limits: SandboxLimits, mode: SandboxMode | None = None) -> SandboxMode:
    """The mode a run gets: `mode`, or the strongest that works; `SandboxUnavailable` when
    it is weaker than `limits.min_isolation`."""
    if mode is None:
        return require_isolation(limits.min_isolation).mode
    if not at_least(mode, limits.min_isolation):
        raise SandboxUnavailable(
            f"sandbox: mode {mode.value} is weaker than min_isolation="
            f"{limits.min_isolation.value}; set min_isolation={mode.value} to allow it")
    return mode


class _Capture:
    """Keeps the first and the last `cap` bytes of a stream, and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
        self.tail.append(chunk)
        self.tail_len += len(chunk)
        while self.tail_len - len(self.tail[0]) >= self.cap:
            self.tail_len -= len(self.tail.popleft())

    def head_text(self, chars: int) -> str:
        text = self.head.decode("utf-8", "replace")
        if self.total <= self.cap and len(text) <= chars:
            return text
        marker = f"\n[output cut: {self.total} bytes in all]"
        return text[: max(chars - len(marker), 0)] + marker

    def tail_text(self, chars: int) -> str:
        text = b"".join(self.tail)[-self.cap :].decode("utf-8", "replace")
        if self.total <= self.cap and len(text) <= chars:
            return text
        marker = f"[output cut: {self.total} bytes in all]\n"
        return marker + text[len(text) - max(chars - len(marker), 0) :]


def _run(code: str, limits: SandboxLimits, mode: SandboxMode,
         pass_fds: tuple[int, ...] = ()) -> RunResult:
    """One run of `code`; `pass_fds` are descriptors the program inherits (the harness's
    pipes), under the same numbers."""
    exe, prefix = base_interpreter()
    drop = drops_uid(mode)
    if drop and mode is SandboxMode.PLAIN and not _reachable_by_others(exe):
        # Without a jail the program needs the host's interpreter; staying root is no option.
        return RunResult(RunStatus.ERROR, f"sandbox error: plain mode as root runs the program "
                         f"under a per-run uid, which cannot execute {exe} (a folder above it "
                         "is closed to other users); use an interpreter every user can run",
                         "", "", 0.0, None, mode)
    uid = _uids.acquire() if drop else os.getuid()
    scratch = tempfile.mkdtemp(prefix=_owner_tag(uid))
    try:
        cgroup = _cgroups.create(os.path.basename(scratch))
    except OSError as cgroup_error:
        shutil.rmtree(scratch, ignore_errors=True)
        if drop:
            _uids.release(uid)
        return RunResult(RunStatus.ERROR, f"sandbox error: cannot create the run's cgroup: "
                         f"{cgroup_error}", "", "", 0.0, None, mode)
    status_r, status_w = os.pipe()
    cfg = {
        "parent_pid": os.getpid(),
        "arch": seccomp_arch(),
        "shm_mb": SHM_SIZE_MB,
        "namespaces": mode is not SandboxMode.PLAIN,
        "jail": mode is not SandboxMode.PLAIN,
        "user_namespace": mode is SandboxMode.USER_JAIL,
        "drop_to_uid": drop,
        "run_uid": uid if drop else 0 if mode is SandboxMode.USER_JAIL else uid,
        "run_gid": uid if drop else 0 if mode is SandboxMode.USER_JAIL else os.getgid(),
        "root_dir": scratch,
        "work_dir": scratch,
        "read_only_paths": sorted({"/usr", prefix}),
        "python": exe,
        "memory_mb": limits.memory_mb,
        "max_processes": limits.max_processes,
        "file_mb": FILE_LIMIT_MB,
        "tmp_mb": TMP_SIZE_MB,
        "cpu_s": math.ceil(limits.timeout_s) + 1,
        "status_fd": status_w,
    }
    if drop and mode is SandboxMode.PLAIN:
        os.chown(scratch, uid, uid)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [exe, "-I", "-S", str(LAUNCHER), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={}, cwd="/", start_new_session=True, pass_fds=(status_w, *pass_fds),
        )
    except OSError as start_error:
        os.close(status_r)
        os.close(status_w)
        _cleanup(scratch, None, cgroup)
        if drop:
            _uids.release(uid)
        return RunResult(RunStatus.ERROR, f"sandbox error: cannot start: {start_error}", "", "",
                         0.0, None, mode)
    os.close(status_w)
    finished = False
    try:
        if cgroup is not None:
            # The launcher forks nothing before its stdin ends, so moving it now puts every
            # process of the run in the cgroup; the move (slow in the kernel) overlaps its start.
            try:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
                    procs.write(str(proc.pid))
            except OSError as cgroup_error:
                proc.kill()  # it still waits for the program: nothing of the run started
                return RunResult(RunStatus.ERROR, f"sandbox error: cannot move the run into "
                                 f"its cgroup: {cgroup_error}", "", "", 0.0, None, mode)
        out, err, status_lines, timed_out = _communicate(proc, code, status_r, limits, start)
        finished = not timed_out
    finally:
        _stop(proc, gently=finished)
        os.close(status_r)
        _cleanup(scratch, uid if drop and mode is SandboxMode.PLAIN else None, cgroup)
        if drop:
            _uids.release(uid)
    duration = time.monotonic() - start
    result = _classify(out, err, status_lines, timed_out, proc.returncode, limits, duration)
    return dataclasses.replace(result, isolation=mode)


def _communicate(proc: subprocess.Popen[bytes], code: str, status_r: int, limits: SandboxLimits,
                 start: float) -> tuple[_Capture, _Capture, list[str], bool]:
    """Feed the program, read its output and status until it ends or the deadline passes."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(code.encode("utf-8", "surrogatepass"))  # any str: never raises
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the launcher failed early; its status says why
    cap = limits.max_output_chars * 4 + 64  # UTF-8 needs at most 4 bytes per character
    out, err = _Capture(cap), _Capture(cap)
    status_buf = bytearray()
    sel = selectors.DefaultSelector()
    sinks = {proc.stdout.fileno(): out.add, proc.stderr.fileno(): err.add,
             status_r: status_buf.extend}
    for fd in sinks:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    deadline = start + limits.timeout_s
    drain_until: float | None = None
    timed_out = False
    try:
        while sel.get_map():
            now = time.monotonic()
            if drain_until is None and _has_end(status_buf):
                drain_until = now + DRAIN_S
            stop = deadline if drain_until is None else min(deadline, drain_until)
            if now >= stop:
                timed_out = drain_until is None
                break
            for key, _ in sel.select(stop - now):
                fd = int(key.fd)
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if chunk:
                    sinks[fd](chunk)
                else:
                    sel.unregister(fd)
    finally:
        sel.close()
    lines = status_buf.decode("utf-8", "replace").splitlines()
    return out, err, lines, timed_out


def _stop(proc: subprocess.Popen[bytes], gently: bool) -> None:
    """End the launcher and everything of the run, then reap the launcher.

    On a timeout the launcher gets SIGTERM: it kills its child and waits for it, and in the
    jail that child is PID 1, which exits only once every process of its namespace is gone.
    """
    if not gently:
        proc.send_signal(signal.SIGTERM)
    if not _exited_unreaped(proc.pid, LAUNCHER_GRACE_S):
        log.warning("sandbox: launcher %d did not stop; killing its process group", proc.pid)
    # The launcher is not reaped yet, so its pid (= the group id) cannot have been reused:
    # this kills whatever is left in the group (programs of plain mode).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _exited_unreaped(pid: int, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for child `pid` to exit, leaving it unreaped (WNOWAIT)."""
    deadline = time.monotonic() + timeout_s
    pause = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _has_end(status_buf: bytearray) -> bool:
    return any(line.startswith((b"exit ", b"signal ", b"error "))
               for line in bytes(status_buf).splitlines())


def _cleanup(scratch: str, sweep_uid: int | None, cgroup: str | None) -> None:
    if sweep_uid is not None:
        kill_uid_processes(sweep_uid)
        remove_files_of_uid(sweep_uid)
    if cgroup is not None:
        _remove_cgroup(cgroup)
    shutil.rmtree(scratch, ignore_errors=True)


def kill_uid_processes(uid: int, rounds: int = 50) -> int:
    """SIGKILL every process whose real uid is `uid` (programs that left their process group).

    Repeats until none is left (a forking program races the sweep); returns how many it killed.
    """
    killed = 0
    for _ in range(rounds):
        found = [pid for pid in _pids_of_uid(uid) if pid != os.getpid()]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


# World-writable folders where a plain-mode run can leave files (the jail has its own).
_SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")


def remove_files_of_uid(uid: int) -> int:
    """Remove what a per-run uid left at the top of the shared writable folders (plain mode:
    a later run under the same uid must not find it). Returns how many entries it removed."""
    removed = 0
    for folder in {tempfile.gettempdir(), *_SHARED_FOLDERS}:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                continue
    return removed


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pids


def _classify(out: _Capture, err: _Capture, status_lines: list[str], timed_out: bool,
              launcher_code: int | None, limits: SandboxLimits, duration: float) -> RunResult:
    chars = limits.max_output_chars
    stdout, stderr = out.head_text(chars), err.tail_text(chars)

    def result(status: RunStatus, reason: str, exit_code: int | None) -> RunResult:
        return RunResult(status, _one_line(reason), stdout, stderr, duration, exit_code)

    if timed_out:
        return result(RunStatus.TIMEOUT, f"timed out after {limits.timeout_s:g} s", None)
    errors = [line[len("error "):] for line in status_lines if line.startswith("error ")]
    if errors:
        return result(RunStatus.ERROR, f"sandbox error: {errors[-1]}", None)
    ends = [line.split() for line in status_lines if line.startswith(("exit ", "signal "))]
    if not ends:
        tail = err.tail_text(400).strip().splitlines()
        detail = tail[-1] if tail else "no output"
        return result(RunStatus.ERROR, f"sandbox error: launcher ended (code {launcher_code}) "
                      f"without a result: {detail}", None)
    kind, number = ends[-1][0], int(ends[-1][1])
    if kind == "signal":
        return result(RunStatus.KILLED, _signal_reason(number, limits), -number)
    if number == 0:
        return result(RunStatus.PASSED, "", 0)
    reason = exception_reason(err.tail_text(8192)) or f"exit code {number}"
    if reason.startswith("MemoryError"):
        return result(RunStatus.KILLED,
                      f"MemoryError: memory limit of {limits.memory_mb} MB reached", number)
    return result(RunStatus.FAILED, reason, number)


def _signal_reason(signum: int, limits: SandboxLimits) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum == signal.SIGXCPU:
        return f"killed by {name}: CPU time limit of {math.ceil(limits.timeout_s) + 1} s"
    if signum == signal.SIGXFSZ:
        return f"killed by {name}: file size limit of {FILE_LIMIT_MB} MB"
    return f"killed by {name}"


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
_FRAME_LINE = re.compile(r'^\s*File "[^"]*", line (\d+)')


def exception_reason(stderr: str) -> str:
    """One line naming the uncaught exception of a Python traceback in `stderr`.

    "AssertionError: expected 3"; a bare ``AssertionError`` gets the failing source line:
    "AssertionError at line 12: assert f(2) == 3". "" when `stderr` ends in no exception.
    """
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1].strip()
    match = _EXCEPTION_LINE.match(last)
    is_traceback = any(line.startswith("Traceback (most recent call last)") for line in lines)
    if not match or not (is_traceback or match.group(1).endswith(("Error", "Exception"))):
        return ""
    if match.group(2) or match.group(1) != "AssertionError":
        return last
    frames = [i for i, line in enumerate(lines) if _FRAME_LINE.match(line)]
    if frames and frames[-1] + 1 < len(lines) - 1:
        number = _FRAME_LINE.match(lines[frames[-1]])
        source = lines[frames[-1] + 1].strip()
        if number and not set(source) <= set("^~ "):
            return f"AssertionError at line {number.group(1)}: {source}"
    return last


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 3] + "..."
