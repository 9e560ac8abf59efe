"""Running untrusted code: the sandbox that executes programs from model answers."""

from warriorcoder.execution.harness import run_tests
from warriorcoder.execution.sandbox import (
    RunResult,
    RunStatus,
    SandboxInfo,
    SandboxLimits,
    SandboxMode,
    SandboxUnavailable,
    TestResult,
    TestStatus,
    require_isolation,
    run_python,
    sandbox_info,
    sandbox_protections,
)

__all__ = [
    "RunResult",
    "RunStatus",
    "SandboxInfo",
    "SandboxLimits",
    "SandboxMode",
    "SandboxUnavailable",
    "TestResult",
    "TestStatus",
    "require_isolation",
    "run_python",
    "run_tests",
    "sandbox_info",
    "sandbox_protections",
]
