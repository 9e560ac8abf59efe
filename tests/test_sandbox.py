"""The sandbox against hostile programs: loops, fork bombs, memory, secrets, files, network."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from warriorcoder.execution import (
    RunStatus,
    SandboxLimits,
    SandboxMode,
    run_python,
    run_tests,
    sandbox_info,
    sandbox_protections,
)
from warriorcoder.execution.sandbox import (
    ISOLATION_ORDER,
    UID_BASE,
    UID_SLOTS,
    SandboxUnavailable,
    at_least,
    base_interpreter,
    drops_uid,
    exception_reason,
    protections_of,
    require_isolation,
)

REPO = Path(__file__).resolve().parents[1]
FAST = SandboxLimits(timeout_s=10.0, min_isolation=SandboxMode.PLAIN)
# An interpreter every user can execute: plain-mode runs as root need one (the venv's base
# interpreter may live under /root), and so do runs as another user.
SYSTEM_PYTHON = "/usr/bin/python3"


def _sandbox_pids(block: range | None = None) -> list[int]:
    """Live processes under a sandbox uid: of `block`, or any (the per-run uids start at
    UID_BASE; each parent process has its own block of them)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry.name}/status").read_text()
        except OSError:
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        # A zombie has ended; it waits for its parent (for orphans, the machine's init).
        uid = int(uid_line.split()[1])
        if (uid in block if block else uid >= UID_BASE) and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


def _uid_block(pid: int) -> range:
    """The per-run uids that the sandbox of process `pid` hands out."""
    first = UID_BASE + (pid % 1_000_000) * UID_SLOTS
    return range(first, first + UID_SLOTS)


def _children_of_this_process() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # Field 4 (after the parenthesised command name) is the parent pid.
        if stat.rsplit(")", 1)[1].split()[1] == me:
            found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_processes_left_behind() -> Iterator[None]:
    # Session fixtures of other test files (the broker, the MongoDB server) are children too.
    before = set(_children_of_this_process())
    yield
    new = set(_children_of_this_process()) - before
    assert not new, f"a sandbox run left child process(es) {sorted(new)}"
    if os.geteuid() == 0:
        # Only this process's uids: other processes on the machine may be running sandboxes.
        assert _sandbox_pids(_uid_block(os.getpid())) == [], "a sandboxed process survived its run"


def needs(protection: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(protection not in sandbox_protections(),
                              reason=f"sandbox has no {protection!r} on this machine")


def test_probe_records_mode_and_protections() -> None:
    info = sandbox_info()
    assert info.protections == protections_of(info.mode)
    # Modes are tried strongest first: each rejected one is stronger than the mode in use and
    # comes with its reason, and jail is either in use or rejected.
    rejected = [SandboxMode(reason.split(":", 1)[0]) for reason in info.rejected]
    assert all(at_least(mode, info.mode) and mode is not info.mode for mode in rejected)
    assert all(reason.split(":", 1)[1].strip() for reason in info.rejected)
    assert info.mode is SandboxMode.JAIL or SandboxMode.JAIL in rejected
    assert "empty-environment" in info.protections
    assert "resource-limits" in info.protections
    if os.geteuid() == 0:
        assert "unprivileged-uid" in info.protections


def test_passing_program_and_its_output() -> None:
    result = run_python("print('hello'); import sys; print('warn', file=sys.stderr)", FAST)
    assert result.status is RunStatus.PASSED and result.passed
    assert result.reason == ""
    assert result.stdout == "hello\n"
    assert result.stderr == "warn\n"
    assert result.exit_code == 0


def test_failed_assertion_names_the_assert() -> None:
    # run_tests: the harness's record names the test and the failing assert.
    result = run_tests("def add(a, b):\n    return a - b", "assert add(1, 2) == 3")
    assert result.status is RunStatus.FAILED
    assert result.reason == ("0/1 tests passed; line 1: assert add(1, 2) == 3: failed: "
                             "AssertionError at line 1: assert add(1, 2) == 3")
    assert result.tests[0].message == "AssertionError at line 1: assert add(1, 2) == 3"


def test_assertion_message_is_the_reason() -> None:
    result = run_tests("x = 2", "assert x == 3, 'expected 3'", FAST)
    assert result.status is RunStatus.FAILED
    assert result.reason.endswith(": failed: AssertionError: expected 3 (line 1)")


def test_other_failures_have_reasons() -> None:
    assert run_python("undefined_name", FAST).reason == (
        "NameError: name 'undefined_name' is not defined")
    assert run_python("def f(:\n  pass", FAST).reason == "SyntaxError: invalid syntax"
    exit_3 = run_python("import sys; sys.exit(3)", FAST)
    assert (exit_3.status, exit_3.reason, exit_3.exit_code) == (RunStatus.FAILED, "exit code 3", 3)
    # stdin is /dev/null: a program waiting for input fails at once instead of hanging.
    assert run_python("input()", FAST).reason.startswith("EOFError")


def test_killed_by_signal() -> None:
    result = run_python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", FAST)
    assert (result.status, result.reason, result.exit_code) == (
        RunStatus.KILLED, "killed by SIGKILL", -9)


def test_infinite_loop_times_out() -> None:
    result = run_python("while True:\n    pass", SandboxLimits(timeout_s=1.0))
    assert result.status is RunStatus.TIMEOUT
    assert result.reason == "timed out after 1 s"
    assert result.exit_code is None


def test_output_is_truncated_and_flood_does_not_hang() -> None:
    limits = SandboxLimits(timeout_s=2.0, max_output_chars=100)
    result = run_python("import sys\nsys.stdout.write('x' * 10_000_000)\n"
                        "sys.stderr.write('e' * 100_000 + 'END')", limits)
    assert result.status is RunStatus.PASSED
    assert len(result.stdout) <= 100 and result.stdout.startswith("xxx")
    assert "10000000 bytes" in result.stdout
    assert len(result.stderr) <= 100 and result.stderr.endswith("eeeEND")


def test_huge_allocation_is_stopped() -> None:
    result = run_python("block = bytearray(4 * 1024 ** 3)\nprint('allocated')",
                        SandboxLimits(memory_mb=256))
    assert result.status is RunStatus.KILLED
    assert result.reason == "MemoryError: memory limit of 256 MB reached"
    assert "allocated" not in result.stdout


def test_growing_allocation_is_stopped() -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))"
    result = run_python(code, SandboxLimits(memory_mb=256))
    assert result.status is RunStatus.KILLED


@needs("process-limit")
def test_process_limit_caps_forks() -> None:
    code = textwrap.dedent("""
        import os, time
        forked = 0
        for _ in range(50):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            forked += 1
        print(forked)
    """)
    result = run_python(code, SandboxLimits(timeout_s=10.0, max_processes=6))
    assert result.status is RunStatus.PASSED, result.reason
    # The limit counts the program's own process: 5 children at most.
    assert int(result.stdout) == 5


@needs("process-limit")
def test_fork_bomb_is_contained_and_cleaned_up() -> None:
    # Every process forks forever, ignoring failures: bounded by the process limit, killed at
    # the timeout. Small limits keep it gentle on a shared machine.
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = run_python(code, SandboxLimits(timeout_s=1.5, max_processes=8))
    assert result.status is RunStatus.TIMEOUT
    # The autouse fixture checks that none of the bomb's processes survived.


def test_process_that_leaves_its_group_is_killed() -> None:
    code = textwrap.dedent("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        print('parent done')
    """)
    result = run_python(code, FAST)
    assert result.status is RunStatus.PASSED
    assert result.stdout == "parent done\n"


def test_program_does_not_see_secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "wc-test-secret-8c1f0e"
    monkeypatch.setenv("WARRIORCODER_TEST_SECRET", secret)
    code = textwrap.dedent("""
        import glob, os
        print(dict(os.environ))
        for path in glob.glob('/proc/*/environ'):
            try:
                print(path, open(path, 'rb').read())
            except OSError as err:
                print(path, 'unreadable', err.errno)
    """)
    result = run_python(code, FAST)
    assert result.status is RunStatus.PASSED, result.reason
    assert secret not in result.stdout
    assert "WARRIORCODER_TEST_SECRET" not in result.stdout
    # The interpreter's own locale coercion (LC_CTYPE) is all it may add to the empty env.
    assert set(eval(result.stdout.splitlines()[0])) <= {"LC_CTYPE"}


def test_program_cannot_read_project_or_host_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("top-secret-contents")
    secret_file.chmod(0o644)
    targets = [str(REPO / "README.md"), str(REPO / "warriorcoder" / "config.py"),
               str(secret_file), "/etc/shadow"]
    code = textwrap.dedent(f"""
        for path in {targets!r}:
            try:
                print(path, 'GOT-CONTENT', open(path).read()[:40])
            except OSError as err:
                print(path, 'denied', type(err).__name__)
    """)
    result = run_python(code, FAST)
    assert result.status is RunStatus.PASSED, result.reason
    assert "GOT-CONTENT" not in result.stdout
    assert "top-secret-contents" not in result.stdout
    assert result.stdout.count("denied") == len(targets)


def test_program_cannot_write_outside_its_directory(tmp_path: Path) -> None:
    outside = [tmp_path / "escaped.txt", REPO / "sandbox-escape.txt", Path("/tmp/wc-escape.txt")]
    code = textwrap.dedent(f"""
        import os
        for path in {[str(p) for p in outside]!r}:
            try:
                with open(path, 'w') as f:
                    f.write('escaped')
                print(path, 'WROTE')
            except OSError as err:
                print(path, 'denied', type(err).__name__)
        with open('inside.txt', 'w') as f:
            f.write('fine')
        print('cwd write ok', open('inside.txt').read())
    """)
    result = run_python(code, FAST)
    assert result.status is RunStatus.PASSED, result.reason
    assert "cwd write ok fine" in result.stdout
    for path in outside:
        assert not path.exists(), f"the program wrote {path}"


def test_working_directory_is_fresh_each_run() -> None:
    first = run_python("open('left.txt', 'w').write('x'); import os; print(os.listdir('.'))", FAST)
    second = run_python("import os; print(os.listdir('.'))", FAST)
    assert "left.txt" in first.stdout
    assert "left.txt" not in second.stdout


def test_file_size_limit() -> None:
    code = "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (64 * 1024 * 1024))"
    result = run_python(code, FAST)
    assert result.status is RunStatus.FAILED
    assert "File too large" in result.reason


@needs("network-namespace")
def test_program_has_no_network() -> None:
    accepted: list[object] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(5.0)
        port = server.getsockname()[1]

        def accept() -> None:
            try:
                accepted.append(server.accept())
            except OSError:
                pass

        listener = threading.Thread(target=accept)
        listener.start()
        code = textwrap.dedent(f"""
            import socket
            for host in ('127.0.0.1', '10.0.0.1', '1.1.1.1'):
                try:
                    socket.create_connection((host, {port}), timeout=2).close()
                    print(host, 'CONNECTED')
                except OSError as err:
                    print(host, 'blocked', err.errno)
        """)
        result = run_python(code, FAST)
        server.close()
        listener.join()
    assert result.status is RunStatus.PASSED, result.reason
    assert "CONNECTED" not in result.stdout
    assert accepted == []


@needs("pid-namespace")
def test_program_sees_no_host_processes() -> None:
    result = run_python("import os; print(sorted(int(p) for p in os.listdir('/proc') "
                        "if p.isdigit()))", FAST)
    assert os.getpid() not in eval(result.stdout)
    assert max(eval(result.stdout)) < 10  # only the sandbox's own init and program


def test_concurrent_runs_stay_apart() -> None:
    programs = [f"import time; time.sleep(0.2); print({i} * 7)" for i in range(6)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda code: run_python(code, FAST), programs))
    assert [r.stdout for r in results] == [f"{i * 7}\n" for i in range(6)]


def _reachable(path: str) -> bool:
    return os.path.exists(path) and all(
        os.stat(p).st_mode & 0o001 for p in [Path(path), *Path(path).resolve().parents])


def _run_elsewhere(code: str, mode: SandboxMode | None, *, timeout_s: float = 10.0,
                   min_isolation: SandboxMode = SandboxMode.PLAIN,
                   uid: int | None = None) -> dict[str, object]:
    """Run `code` through the sandbox in a fresh process of SYSTEM_PYTHON (as `uid` when
    given): a real run of a mode this process cannot give (plain as root with a private
    interpreter, user-jail as non-root). Returns the RunResult's fields, or {"error": ...}."""
    if not _reachable(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} is missing or not executable by every user")
    if uid is not None and os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    driver = textwrap.dedent(f"""
        import dataclasses, json, sys
        sys.path.insert(0, {str(REPO)!r})
        from warriorcoder.execution.sandbox import (
            SandboxLimits, SandboxMode, SandboxUnavailable, require_isolation, run_python)
        try:
            limits = SandboxLimits(timeout_s={timeout_s!r}, min_isolation={min_isolation.value!r})
            mode = {mode.value if mode else None!r}
            result = run_python(sys.stdin.read(), limits, mode=SandboxMode(mode) if mode else None)
            print(json.dumps(dataclasses.asdict(result)))
        except SandboxUnavailable as err:
            print(json.dumps({{"error": str(err)}}))
    """)
    done = subprocess.run([SYSTEM_PYTHON, "-I", "-c", driver], input=code, capture_output=True,
                          text=True, timeout=timeout_s + 60, check=False, user=uid, group=uid,
                          extra_groups=[] if uid is not None else None)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


def _plain(code: str, limits: SandboxLimits = FAST) -> dict[str, object]:
    """A plain-mode run, in this process when it can have one, else under SYSTEM_PYTHON."""
    if not drops_uid(SandboxMode.PLAIN) or _reachable(base_interpreter()[0]):
        return dataclasses.asdict(run_python(code, limits, mode=SandboxMode.PLAIN))
    return _run_elsewhere(code, SandboxMode.PLAIN, timeout_s=limits.timeout_s)


def test_plain_mode_fallback_still_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARRIORCODER_TEST_SECRET", "plain-secret")
    env = _plain("import os; print(sorted(os.environ))")
    assert env["status"] == "passed", env
    assert "WARRIORCODER_TEST_SECRET" not in str(env["stdout"])
    loop = _plain("while True: pass", SandboxLimits(timeout_s=1.0, min_isolation=SandboxMode.PLAIN))
    assert loop["status"] == "timeout"
    memory = _plain("bytearray(2 * 1024 ** 3)",
                    SandboxLimits(memory_mb=128, min_isolation=SandboxMode.PLAIN))
    assert memory["status"] == "killed"
    first = _plain("open('x.txt', 'w').write('1'); import os; print(os.getcwd())")
    assert first["isolation"] == "plain"
    assert not Path(str(first["stdout"]).strip()).exists(), "plain mode left its working directory"


@pytest.mark.skipif(os.geteuid() != 0, reason="plain mode runs under the caller's uid: no sweep")
def test_plain_mode_as_root_never_stays_root() -> None:
    # A per-run uid cannot read the parent's environment or signal the parent, and what it
    # leaves (a setsid daemon, files in the shared /tmp and /dev/shm) is gone after the run.
    code = textwrap.dedent("""
        import os, time
        print(os.getuid())
        try:
            open(f'/proc/{os.getppid()}/environ', 'rb').read()
            print('READ-PARENT-ENV')
        except OSError as err:
            print('environ denied', err.errno)
        try:
            os.kill(os.getppid(), 0)
            print('CAN-SIGNAL-PARENT')
        except OSError as err:
            print('signal denied', err.errno)
        for path in ('/tmp/wc-plain-leftover', '/dev/shm/wc-plain-leftover'):
            open(path, 'w').write('x')
        if os.fork() == 0:
            os.setsid()
            time.sleep(60)
    """)
    result = _plain(code)
    assert result["status"] == "passed", result
    uid_line, *rest = str(result["stdout"]).splitlines()
    assert int(uid_line) >= UID_BASE
    assert "READ-PARENT-ENV" not in rest and "CAN-SIGNAL-PARENT" not in rest
    for path in ("/tmp/wc-plain-leftover", "/dev/shm/wc-plain-leftover"):
        assert not Path(path).exists(), f"plain mode left {path}"
    # The autouse fixture checks that the setsid daemon is gone.


def test_plain_mode_refuses_an_interpreter_its_uid_cannot_run() -> None:
    exe = base_interpreter()[0]
    if not drops_uid(SandboxMode.PLAIN) or _reachable(exe):
        pytest.skip("plain mode can drop to a per-run uid with this interpreter")
    result = run_python("pass", FAST, mode=SandboxMode.PLAIN)
    assert result.status is RunStatus.ERROR
    assert "plain mode as root" in result.reason and exe in result.reason


def test_bad_limits_and_code_are_rejected() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=1)
    with pytest.raises(TypeError, match="code must be a str"):
        run_python(b"print(1)")  # type: ignore[arg-type]


@pytest.mark.parametrize(("stderr", "reason"), [
    (("Traceback (most recent call last):\n  File \"/tmp/main.py\", line 4, in <module>\n"
      "    assert f(1) == 2\n           ^^^^^^^^^\nAssertionError\n"),
     "AssertionError at line 4: assert f(1) == 2"),
    (("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
      "ValueError: bad value\n"), "ValueError: bad value"),
    ("some log line\n", ""),
    ("", ""),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyboardInterrupt\n",
     "KeyboardInterrupt"),
])
def test_exception_reason(stderr: str, reason: str) -> None:
    assert exception_reason(stderr) == reason


# -- fail closed: min_isolation -------------------------------------------------------------


def test_isolation_order() -> None:
    assert ISOLATION_ORDER == (SandboxMode.JAIL, SandboxMode.USER_JAIL, SandboxMode.PLAIN)
    assert at_least(SandboxMode.JAIL, SandboxMode.USER_JAIL)
    assert at_least(SandboxMode.USER_JAIL, SandboxMode.USER_JAIL)
    assert not at_least(SandboxMode.PLAIN, SandboxMode.USER_JAIL)
    assert not at_least(SandboxMode.USER_JAIL, SandboxMode.JAIL)
    assert SandboxLimits().min_isolation is SandboxMode.JAIL  # default: the strongest
    assert SandboxLimits(min_isolation="user-jail").min_isolation is SandboxMode.USER_JAIL  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_isolation must be one of"):
        SandboxLimits(min_isolation="none")  # type: ignore[arg-type]


def test_a_weaker_mode_than_min_isolation_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    with pytest.raises(SandboxUnavailable, match="mode plain is weaker than min_isolation=jail"):
        run_python(f"open({str(marker)!r}, 'w').write('ran')", SandboxLimits(),
                   mode=SandboxMode.PLAIN)
    assert not marker.exists()


def test_every_run_records_its_isolation() -> None:
    result = run_python("pass", FAST)
    assert result.isolation is sandbox_info().mode
    assert run_tests("x = 1", "assert x == 1", FAST).isolation is sandbox_info().mode


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another uid")
def test_min_isolation_jail_fails_closed_where_only_user_jail_works() -> None:
    # A non-root process cannot build the jail: min_isolation=jail refuses, naming why and
    # the setting that would allow the weaker mode; min_isolation=user-jail runs.
    refused = _run_elsewhere("print('RAN')", None, min_isolation=SandboxMode.JAIL, uid=65534)
    assert refused.get("error") == (
        "sandbox: min_isolation=jail but jail: needs root (running as uid 65534); the strongest "
        "mode that works here is user-jail: set execution.min_isolation=user-jail to allow "
        "weaker isolation"), refused
    allowed = _run_elsewhere("print('RAN')", None, min_isolation=SandboxMode.USER_JAIL,
                             uid=65534)
    if "error" in allowed:
        pytest.skip(f"no user-jail for uid 65534 here: {allowed['error']}")
    assert (allowed["status"], allowed["stdout"], allowed["isolation"]) == (
        "passed", "RAN\n", "user-jail")


def test_require_isolation_names_the_mode_in_use() -> None:
    info = require_isolation(SandboxMode.PLAIN)
    assert info.mode is sandbox_info().mode
    if info.mode is SandboxMode.JAIL:
        assert require_isolation("jail") is info


# -- the jails hold: chroot escape, capabilities, system calls --------------------------------

ESCAPE = textwrap.dedent("""
    import os
    out = []
    try:
        os.makedirs('/tmp/esc', exist_ok=True)
        os.chroot('/tmp/esc')
        for _ in range(64):
            os.chdir('..')
        os.chroot('.')
        out.append('CHROOT-ESCAPED')
    except OSError as err:
        out.append(f'chroot denied {err.errno}')
    for path in PATHS:
        out.append(f'{path} ' + ('VISIBLE' if os.path.exists(path) else 'absent'))
    try:  # after an escape this would land in the host's /tmp (the test looks there)
        open('/../../../tmp/wc-escape-probe', 'w').write('x')
    except OSError as err:
        out.append(f'write denied {err.errno}')
    status = open('/proc/self/status').read()
    out += [line for line in status.splitlines() if line.startswith('Cap')]
    print(out)
""")


def _jail_modes() -> list[SandboxMode]:
    mode = sandbox_info().mode
    return [m for m in (SandboxMode.JAIL, SandboxMode.USER_JAIL) if at_least(mode, m)]


@pytest.mark.parametrize("mode", [SandboxMode.JAIL, SandboxMode.USER_JAIL])
def test_chroot_escape_fails_and_no_capability_is_left(mode: SandboxMode) -> None:
    if mode not in _jail_modes():
        pytest.skip(f"no {mode.value} on this machine")
    paths = [str(REPO / "README.md"), "/work", "/home", "/etc/shadow"]
    result = run_python(f"PATHS = {paths!r}\n" + ESCAPE, FAST, mode=mode)
    assert result.status is RunStatus.PASSED, result.reason
    out = eval(result.stdout)
    assert "CHROOT-ESCAPED" not in out
    assert not [line for line in out if "VISIBLE" in line], out
    assert not Path("/tmp/wc-escape-probe").exists()
    caps = [line for line in out if line.startswith("Cap")]
    assert len(caps) == 5 and all(line.endswith("0000000000000000") for line in caps), caps


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another uid")
def test_chroot_escape_fails_in_user_jail_as_non_root() -> None:
    # The mode non-root machines get, run for real by an unprivileged uid.
    paths = [str(REPO / "README.md"), "/work", "/root"]
    result = _run_elsewhere(f"PATHS = {paths!r}\n" + ESCAPE, SandboxMode.USER_JAIL, uid=65534)
    if result.get("status") == "error" or "error" in result:
        pytest.skip(f"no user-jail for uid 65534 here: {result}")
    assert result["status"] == "passed", result
    out = eval(str(result["stdout"]))
    assert "CHROOT-ESCAPED" not in out
    assert not [line for line in out if "VISIBLE" in line], out
    assert all(line.endswith("0000000000000000") for line in out if line.startswith("Cap"))


SYSCALLS = textwrap.dedent("""
    import ctypes, errno, os, threading
    libc = ctypes.CDLL(None, use_errno=True)
    def call(name, *args):
        ret = getattr(libc, name)(*args)
        return f'{name} ' + ('ALLOWED' if ret >= 0 else errno.errorcode[ctypes.get_errno()])
    out = []
    try:
        os.memfd_create('hold')
        out.append('memfd_create ALLOWED')
    except OSError as err:
        out.append(f'memfd_create {errno.errorcode[err.errno]}')
    out.append(call('syscall', 248, b'user', b'carry', b'data', 4, -3))  # add_key
    out.append(call('syscall', 250, 0, -3, 0))  # keyctl(GET_KEYRING_ID, session)
    out.append(call('ptrace', 0, 0, 0, 0))  # PTRACE_TRACEME
    out.append(call('unshare', 0x10000000))  # CLONE_NEWUSER
    out.append(call('mount', b'none', b'/tmp', b'tmpfs', 0, None))
    out.append(call('syscall', 425, 8, ctypes.create_string_buffer(120)))  # io_uring_setup
    out.append(call('syscall', 321, 0, None, 0))  # bpf
    # What Python itself needs keeps working: threads (clone3 falls back to clone), forks,
    # and ctypes callbacks.
    box = []
    worker = threading.Thread(target=box.append, args=(1,))
    worker.start(); worker.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda v: v + 1)
    print(out, box, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), callback(1))
""")


@needs("syscall-filter")
def test_system_call_filter_denies_memfd_keyring_and_namespaces() -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the probe program uses x86_64 system call numbers")
    for mode in _jail_modes():
        result = run_python(SYSCALLS, FAST, mode=mode)
        assert result.status is RunStatus.PASSED, (mode, result.reason, result.stderr)
        out, box, code, called = _parse_syscalls(result.stdout)
        assert [line for line in out if "ALLOWED" in line] == [], (mode, out)
        assert all(line.endswith("EPERM") for line in out), (mode, out)
        assert (box, code, called) == ([1], 7, 2)


def _parse_syscalls(stdout: str) -> tuple[list[str], list[int], int, int]:
    head, rest = stdout.rsplit("]", 1)[0] + "]", stdout.rsplit("]", 1)[1].split()
    out_text, box_text = head.split("] [")
    return eval(out_text + "]"), eval("[" + box_text), int(rest[0]), int(rest[1])


def test_keyring_data_does_not_reach_a_later_run() -> None:
    # The first run's key would outlive it in the kernel under its uid; the filter denies it.
    store = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
             "print(libc.syscall(248, b'user', b'wc-carry', b'secret', 6, -4), "
             "ctypes.get_errno())")
    if os.uname().machine != "x86_64":
        pytest.skip("the probe program uses x86_64 system call numbers")
    first = run_python(store, FAST)
    assert first.stdout.split() == ["-1", "1"], first.stdout  # EPERM
    second = run_python("print(open('/proc/keys').read() if __import__('os').path.exists("
                        "'/proc/keys') else '')", FAST)
    assert "wc-carry" not in second.stdout


def test_memfd_cannot_hold_memory_past_the_limit() -> None:
    code = textwrap.dedent("""
        import os
        fd = os.memfd_create('hold')
        for _ in range(64):
            os.write(fd, b'x' * (16 * 1024 * 1024))
        print('HELD 1 GiB')
    """)
    result = run_python(code, SandboxLimits(memory_mb=256, min_isolation=SandboxMode.PLAIN))
    assert "HELD" not in result.stdout
    if "syscall-filter" in sandbox_protections():
        assert result.reason == "PermissionError: [Errno 1] Operation not permitted"


# -- multiprocessing and subprocess inside the sandbox ---------------------------------------

MULTIPROCESSING = textwrap.dedent("""
    import multiprocessing, subprocess, sys
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import shared_memory

    def square(x):
        return x * x

    if __name__ == '__main__':
        with multiprocessing.Pool(2) as pool:
            print(pool.map(square, range(4)))
        queue = multiprocessing.Queue()
        queue.put('queued')
        print(queue.get())
        with ProcessPoolExecutor(2) as executor:
            print(list(executor.map(square, [5])))
        with multiprocessing.get_context('spawn').Pool(1) as pool:
            print(pool.map(square, [6]))
        child = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True,
                               text=True, check=True)
        print(child.stdout.strip())
        block = shared_memory.SharedMemory(create=True, size=4096)
        block.close()
        block.unlink()
        print('shared memory ok')
""")


@pytest.mark.parametrize("mode", [SandboxMode.JAIL, SandboxMode.USER_JAIL, SandboxMode.PLAIN])
def test_multiprocessing_and_subprocess_of_sys_executable_work(mode: SandboxMode) -> None:
    expected = "[0, 1, 4, 9]\nqueued\n[25]\n[36]\n42\nshared memory ok\n"
    if mode is SandboxMode.PLAIN:
        result = _plain(MULTIPROCESSING)
        assert (result["status"], result["stdout"]) == ("passed", expected), result
        return
    if mode not in _jail_modes():
        pytest.skip(f"no {mode.value} on this machine")
    run = run_python(MULTIPROCESSING, FAST, mode=mode)
    assert (run.status, run.stdout) == (RunStatus.PASSED, expected), (run.reason, run.stderr)


# -- the parent dies: nothing of the run survives it, its leftovers are swept ----------------

PARENT = textwrap.dedent("""
    import sys
    sys.path.insert(0, REPO)
    from warriorcoder.execution.sandbox import SandboxLimits, SandboxMode, run_python
    mode = SandboxMode(sys.argv[1])
    code = ("import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(300)\\n"
            "time.sleep(300)")
    run_python(code, SandboxLimits(timeout_s=300, min_isolation=SandboxMode.PLAIN), mode=mode)
""")


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="the run's processes are found by their per-run uid")
@pytest.mark.parametrize("mode", [SandboxMode.JAIL, SandboxMode.PLAIN])
def test_killed_parent_leaves_no_process_and_its_scratch_is_swept(mode: SandboxMode) -> None:
    python = SYSTEM_PYTHON if mode is SandboxMode.PLAIN else base_interpreter()[0]
    if mode is SandboxMode.PLAIN and not _reachable(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} is missing or not executable by every user")
    if mode not in [*_jail_modes(), SandboxMode.PLAIN]:
        pytest.skip(f"no {mode.value} on this machine")
    parent = subprocess.Popen([python, "-I", "-c", f"REPO = {str(REPO)!r}\n" + PARENT,
                               mode.value])
    try:
        block = _uid_block(parent.pid)
        deadline = time.monotonic() + 20
        run: set[int] = set()
        while time.monotonic() < deadline:  # wait for the program and its daemon
            run = _descendants(parent.pid)
            if len(_sandbox_pids(block)) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the sandboxed program did not start")
        run |= set(_sandbox_pids(block))
        scratch = [p for p in Path(tempfile.gettempdir()).glob(f"wc-sandbox-{parent.pid}.*")]
        assert len(scratch) == 1
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in run) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in run if _alive(pid)]
    if mode is SandboxMode.JAIL:
        # The launcher and the namespace's init die with their parent, and with init every
        # process of the run.
        assert survivors == [], survivors
    assert scratch[0].exists()  # nothing cleaned up after the killed parent...
    # ... until the next sandbox start sweeps: the folder, and (plain) the setsid daemon.
    swept = _run_elsewhere("pass", None, timeout_s=10.0) if mode is SandboxMode.PLAIN else None
    if swept is None:
        from warriorcoder.execution.sandbox import sweep_stale
        assert sweep_stale() >= 1
    assert not scratch[0].exists()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in run) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in run if _alive(pid)] == []




# -- fair CPU between concurrent runs ---------------------------------------------------------


@needs("cpu-fair-share")
def test_each_run_and_its_setsid_children_share_one_cpu_cgroup() -> None:
    code = textwrap.dedent("""
        import os
        def cpu_cgroup():
            return next(line for line in open('/proc/self/cgroup')
                        if 'cpu' in line.split(':')[1].split(',')).split(':', 2)[2].strip()
        read, write = os.pipe()
        if os.fork() == 0:
            os.setsid()
            os.write(write, cpu_cgroup().encode())
            os._exit(0)
        os.wait()
        print(cpu_cgroup(), os.read(read, 4096).decode())
    """)
    first, second = run_python(code, FAST), run_python(code, FAST)
    own, child = first.stdout.split()
    assert own == child and "/wc-sandbox-" in own, first.stdout
    assert second.stdout.split()[0] != own  # a cgroup per run


@needs("cpu-fair-share")
def test_setsid_spinners_do_not_starve_a_concurrent_run() -> None:
    spinners = textwrap.dedent("""
        import os
        for _ in range(31):
            if os.fork() == 0:
                os.setsid()  # each session would be a scheduling group of its own
                while True:
                    pass
        while True:
            pass
    """)
    # One CPU second, whatever the machine's speed: wall time measures the share it got.
    # Each process competing alone, it would get 2/33 of this 2-core machine: about 16 s.
    compute = "import time\nwhile time.process_time() < 1.0:\n    pass\nprint('done')"
    with ThreadPoolExecutor(max_workers=2) as pool:
        hog = pool.submit(run_python, spinners,
                          SandboxLimits(timeout_s=8.0, max_processes=32,
                                        min_isolation=SandboxMode.PLAIN))
        time.sleep(0.5)  # the spinners are up
        worker = pool.submit(run_python, compute,
                             SandboxLimits(timeout_s=7.0, min_isolation=SandboxMode.PLAIN))
        result = worker.result()
        assert hog.result().status is RunStatus.TIMEOUT
    assert (result.status, result.stdout) == (RunStatus.PASSED, "done\n"), result.reason


FORGE = textwrap.dedent("""
    import os
    forged = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f'/proc/{pid}/fd')
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f'/proc/{pid}/fd/{fd}', 'w') as f:
                    f.write('error forged by the program\\nexit 0\\n')
                forged.append(f'{pid}/{fd}')
            except OSError:
                pass
    print(forged)
    raise SystemExit(1)
""")


@pytest.mark.parametrize("mode", [SandboxMode.JAIL, SandboxMode.USER_JAIL, SandboxMode.PLAIN])
def test_program_cannot_write_the_sandboxs_status_pipe(mode: SandboxMode) -> None:
    # Through /proc/PID/fd a program could reopen the launcher's status pipe and report an end
    # of its choosing; the launcher and the jail's init are not dumpable, and other uids' /proc
    # is closed anyway. (Non-root plain mode shares the caller's uid: see docs/sandbox.md.)
    if mode is SandboxMode.PLAIN:
        if os.geteuid() != 0:
            pytest.skip("non-root plain runs under the caller's uid")
        result = _plain(FORGE)
        assert (result["status"], result["reason"], result["stdout"]) == (
            "failed", "exit code 1", "[]\n"), result
        return
    if mode not in _jail_modes():
        pytest.skip(f"no {mode.value} on this machine")
    run = run_python(FORGE, FAST, mode=mode)
    assert (run.status, run.reason, run.stdout) == (RunStatus.FAILED, "exit code 1", "[]\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another uid")
def test_program_cannot_write_the_status_pipe_in_user_jail_as_non_root() -> None:
    result = _run_elsewhere(FORGE, SandboxMode.USER_JAIL, uid=65534)
    if "error" in result:
        pytest.skip(f"no user-jail for uid 65534 here: {result['error']}")
    assert (result["status"], result["reason"], result["stdout"]) == (
        "failed", "exit code 1", "[]\n"), result


def test_sweep_removes_only_real_stale_folders_of_ours() -> None:
    from warriorcoder.execution.sandbox import sweep_stale

    # Our own pid with a start time it never had: an owner that has ended, for sure.
    tmp = Path(tempfile.gettempdir())
    uid = UID_BASE - 1  # no per-run uid: nothing to kill
    stale = tmp / f"wc-sandbox-{os.getpid()}.1.{uid}-stale"
    planted_link = tmp / f"wc-sandbox-{os.getpid()}.1.{uid}-link"
    live = tmp / f"wc-sandbox-{os.getpid()}.{_start_of_this_process()}.{uid}-live"
    target = tmp / f"wc-sweep-target-{os.getpid()}"
    try:
        for folder in (stale, live, target):
            folder.mkdir()
        (target / "keep.txt").write_text("not the sandbox's")
        planted_link.symlink_to(target)
        planted_other = None
        if os.geteuid() == 0:  # a look-alike owned by neither us nor the uid in its name
            planted_other = tmp / f"wc-sandbox-{os.getpid()}.1.{uid}-other"
            planted_other.mkdir()
            os.chown(planted_other, 12345, 12345)
        sweep_stale()
        assert not stale.exists()
        assert live.exists() and (target / "keep.txt").exists() and planted_link.is_symlink()
        assert planted_other is None or planted_other.exists()
    finally:
        for path in (stale, live, target, planted_link,
                     tmp / f"wc-sandbox-{os.getpid()}.1.{uid}-other"):
            if path.is_symlink():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)


def _start_of_this_process() -> int:
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_seccomp_program_is_well_formed_on_each_architecture(arch: str) -> None:
    # aarch64 cannot run here: this checks its filter's shape the way the kernel will.
    import importlib.util

    spec = importlib.util.spec_from_file_location("jail_launcher", REPO / "warriorcoder" /
                                                  "execution" / "jail_launcher.py")
    assert spec is not None and spec.loader is not None
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    program = launcher.seccomp_program(arch)
    assert len(program) < 255
    for i, (code, jt, jf, _k) in enumerate(program):
        if code & 0x07 == 0x05:  # BPF_JMP: both targets inside the program
            assert i + 1 + max(jt, jf) < len(program)
    returns = {k for code, _, _, k in program if code == 0x06}
    assert returns == {0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38}  # allow, EPERM, ENOSYS
    # The filter first checks the architecture, then denies memfd_create.
    assert program[0] == (0x20, 0, 0, 4) and program[1][3] == launcher._AUDIT_ARCH[arch]
    memfd = launcher._SYSCALLS[arch]["memfd_create"]
    assert any(code == 0x15 and k == memfd for code, _, _, k in program)
