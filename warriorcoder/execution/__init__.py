"""Running untrusted code: the sandbox that executes programs from model answers."""

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
    run_tests,
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
