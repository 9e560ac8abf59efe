"""The sandbox against hostile programs: loops, fork bombs, memory, secrets, files, network."""

from __future__ import annotations

import os
import socket
import textwrap
import threading
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
from warriorcoder.execution.sandbox import UID_BASE, drops_uid, exception_reason

REPO = Path(__file__).resolve().parents[1]
FAST = SandboxLimits(timeout_s=10.0)


def _sandbox_pids() -> list[int]:
    """Processes running under a sandbox uid (the per-run uids start at UID_BASE)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry.name}/status").read_text()
        except OSError:
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        if int(uid_line.split()[1]) >= UID_BASE:
            found.append(int(entry.name))
    return found


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
        assert _sandbox_pids() == [], "a sandboxed process survived its run"


def needs(protection: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(protection not in sandbox_protections(),
                              reason=f"sandbox has no {protection!r} on this machine")


def test_probe_records_mode_and_protections() -> None:
    info = sandbox_info()
    assert info.mode in set(SandboxMode)
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
    result = run_tests("def add(a, b):\n    return a - b", "assert add(1, 2) == 3")
    assert result.status is RunStatus.FAILED
    assert result.reason.startswith("AssertionError at line ")
    assert "assert add(1, 2) == 3" in result.reason
    assert result.exit_code == 1


def test_assertion_message_is_the_reason() -> None:
    result = run_tests("x = 2", "assert x == 3, 'expected 3'", FAST)
    assert (result.status, result.reason) == (RunStatus.FAILED, "AssertionError: expected 3")


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


def test_plain_mode_fallback_still_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARRIORCODER_TEST_SECRET", "plain-secret")
    env = run_python("import os; print(sorted(os.environ))", FAST, mode=SandboxMode.PLAIN)
    assert env.status is RunStatus.PASSED, env.reason
    assert "WARRIORCODER_TEST_SECRET" not in env.stdout
    loop = run_python("while True: pass", SandboxLimits(timeout_s=1.0), mode=SandboxMode.PLAIN)
    assert loop.status is RunStatus.TIMEOUT
    memory = run_python("bytearray(2 * 1024 ** 3)", SandboxLimits(memory_mb=128),
                        mode=SandboxMode.PLAIN)
    assert memory.status is RunStatus.KILLED
    first = run_python("open('x.txt', 'w').write('1'); import os; print(os.getcwd())", FAST,
                       mode=SandboxMode.PLAIN)
    assert not Path(first.stdout.strip()).exists(), "plain mode left its working directory"


@pytest.mark.skipif(not drops_uid(SandboxMode.PLAIN),
                    reason="plain mode runs under the caller's uid here: no uid sweep")
def test_plain_mode_kills_processes_that_leave_their_group() -> None:
    escaped = run_python(
        "import os, time\nif os.fork() == 0:\n    os.setsid(); time.sleep(60)\nprint('ok')",
        FAST, mode=SandboxMode.PLAIN)
    assert escaped.stdout == "ok\n"
    # The autouse fixture checks that the sleeper is gone.


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
