"""Prometheus (Debian's package) scrapes every service of a running arena."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import free_ports, wait_for_port
from distributed_harness import SERVICES, Arena
from test_distributed import arena, start_round  # noqa: F401  (the fixture)

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.integration  # a Prometheus server, besides the arena's broker and MongoDB


def query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_ready(port: int, timeout_s: float = 60) -> None:
    """Prometheus answers 503 until its storage is open: wait for /-/ready."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5).status == 200:
                return
        except OSError:  # HTTPError (503) and connection errors alike
            pass
        time.sleep(0.2)
    raise TimeoutError(f"Prometheus on port {port} not ready after {timeout_s}s")


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (make test installs it)")
def test_prometheus_scrapes_every_service(arena: Arena, tmp_path: Path) -> None:  # noqa: F811
    challenges = start_round(arena)
    arena.wait_round_done(battles=2 * challenges)
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{
            "job_name": "warriorcoder",
            "static_configs": [{"targets": [f"127.0.0.1:{arena.metrics_ports[s]}"
                                            for s in SERVICES]}],
        }],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    assert subprocess.run(["promtool", "check", "config", str(config_file)],
                          capture_output=True, check=False).returncode == 0
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'db'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        wait_ready(port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            up = query(port, "up == 1")
            if len(up) == len(SERVICES):
                break
            time.sleep(0.5)
        assert len(up) == len(SERVICES), up
        for expr, services in [
            ("sum by (service) (warriorcoder_messages_consumed_total)",
             {"responder", "judge", "rater", "exporter"}),
            ("sum by (service) (warriorcoder_model_tokens_total)",
             {"challenger", "responder", "judge"}),
            ('sum by (service) (warriorcoder_battles_total{status="rated"})',
             {"rater", "exporter"}),
        ]:
            found = {r["metric"]["service"] for r in query(port, expr)}
            assert found == services, (expr, found)
        # Resident memory of every service process (the process collector).
        assert len(query(port, "process_resident_memory_bytes > 0")) == len(SERVICES)
        judges = {r["metric"]["judge"] for r in query(port, "warriorcoder_judge_consistency")}
        assert judges == {"a", "b", "c"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
