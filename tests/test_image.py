"""The services' container image, run for real (`make test-image`, marker `image`).

`make image` builds deploy/Dockerfile (deploy/image.sh: docker, or podman/buildah with a
debootstrapped base when no registry answers); `make test-image` then runs this file with
WARRIORCODER_TEST_IMAGE (the image) and WARRIORCODER_IMAGE_ENGINE (docker or podman) set. The
five services run as containers of that image on the host network, against the test session's
Kafka-protocol broker (Tansu) and MongoDB wire server on 127.0.0.1 and a fake OpenAI-compatible
model server. The round is started and followed with the image's own CLI; the dataset is
written by the exporter container into a bound folder and checked like the distributed fault
tests check theirs: every battle rated once, one SFT record per challenge. Each container then
stops on SIGTERM with exit status 0.

Slow (minutes, mostly container start-up) and needs a container engine, so `make test` leaves
it out; every wait is a deadline for a broken run, never an assertion about speed.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from distributed_harness import SERVICES, Arena, running_arena
from fake_openai_server import FakeOpenAIServer
from test_distributed_faults import (
    BATTLES,
    MODEL_DELAY_S,
    ROUND_INSTRUCTIONS,
    assert_exactly_once,
    assert_nothing_dead_lettered,
    round_config,
)

IMAGE = os.environ.get("WARRIORCODER_TEST_IMAGE", "")
ENGINE = os.environ.get("WARRIORCODER_IMAGE_ENGINE", "podman")
# The flags deploy/image.sh runs podman with on machines without cgroup v2 delegation (crun
# refuses hybrid cgroups; raising RLIMIT_NOFILE is not permitted there).
ENGINE_FLAGS = (["--runtime", "runc", "--ulimit", "nofile=4096:4096", "--ulimit",
                 "nproc=4096:4096"] if ENGINE == "podman" else [])
# The image's user (deploy/Dockerfile): whatever it writes into a bound folder is owned by it.
IMAGE_UID = 10001

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(not IMAGE, reason="run with `make test-image` (builds the image first)"),
]


def engine_run(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """`ENGINE run --rm` of the image on the host network with `args` (the CLI's arguments)."""
    return subprocess.run(
        [ENGINE, "run", *ENGINE_FLAGS, "--rm", "--network=host", IMAGE, *args],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )


class ImageArena(Arena):
    """The five services as containers of IMAGE (host network, so the ports, broker, MongoDB
    and model server on 127.0.0.1 are the same as for processes). The arena config is bound
    read-only at its own path, and the folder `exports` next to it writable at its own path, for
    WriteExport."""

    @property
    def exports(self) -> Path:
        return self.config_path.parent / "exports"

    def container(self, name: str) -> str:
        return f"wc-{self.env['WARRIORCODER_MONGO_DATABASE']}-{name}"

    def launch(self, name: str, *, service: str | None = None) -> None:
        service = service or name
        if name not in self.grpc_ports:
            raise ValueError(f"no ports for {name!r}")
        env = {k: v for k, v in self.env.items() if k.startswith("WARRIORCODER_")}
        env |= {"WARRIORCODER_GRPC_PORT": str(self.grpc_ports[name]),
                "WARRIORCODER_METRICS_PORT": str(self.metrics_ports[name])}
        config = str(self.config_path)
        command = [ENGINE, "run", *ENGINE_FLAGS, "--rm", "--name", self.container(name),
                   "--network=host", "-v", f"{config}:{config}:ro",
                   "-v", f"{self.exports}:{self.exports}",
                   *(f"--env={k}={v}" for k, v in sorted(env.items())), IMAGE, "serve", service]
        with (self.logs / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def wait_serving(self, name: str, timeout_s: float = 180) -> None:
        # A container takes longer to come up than a process.
        super().wait_serving(name, timeout_s=timeout_s)

    def stop(self, name: str) -> int:
        """SIGTERM to the container (its PID 1, the service), then its exit status."""
        subprocess.run([ENGINE, "stop", "--time", "60", self.container(name)],
                       capture_output=True, check=False, timeout=90)
        return self.procs.pop(name).wait(timeout=90)

    def kill(self, name: str) -> None:
        subprocess.run([ENGINE, "rm", "--force", self.container(name)],
                       capture_output=True, check=False, timeout=90)
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait(timeout=30)


def test_the_image_runs_a_round_and_writes_the_dataset(
    tmp_path: Path, kafka_bootstrap: str, mongo_uri: str, unique_kafka_prefix: str,
) -> None:
    help_run = engine_run("serve", "judge", "--help")
    assert help_run.returncode == 0, help_run.stderr
    assert "judge" in help_run.stdout

    with FakeOpenAIServer() as models:
        models.set_behaviour("normal", completion_text="A]]", delay_s=MODEL_DELAY_S / 3)
        config = round_config(models.base_url, f"image-{uuid.uuid4().hex[:6]}")
        exports = tmp_path / "exports"
        exports.mkdir()
        exports.chmod(0o777)  # the image's user is not root
        with running_arena(tmp_path, config, kafka_bootstrap=kafka_bootstrap,
                           mongo_uri=mongo_uri, prefix=unique_kafka_prefix,
                           extra_env={"WARRIORCODER_EXPORT_ROOT": str(exports)},
                           arena_type=ImageArena) as arena:
            challenger = arena.address("challenger")

            started = engine_run("round", "start", "--challenger", challenger)
            assert started.returncode == 0, started.stderr
            assert f"{len(ROUND_INSTRUCTIONS)} challenges published" in started.stdout

            arena.wait_round_done(battles=BATTLES, timeout_s=300)
            status = engine_run("round", "status", "--challenger", challenger)
            assert status.returncode == 0, status.stderr
            rated = re.search(r"(\d+) rated and (\d+) failed", status.stdout)
            assert rated and (int(rated[1]), int(rated[2])) == (BATTLES, 0), status.stdout

            out = exports / "round"
            assert_exactly_once(arena, out)  # WriteExport by the exporter container
            assert_nothing_dead_lettered(arena)
            for name in ("sft.jsonl", "leaderboard.json"):
                assert (out / name).stat().st_uid == IMAGE_UID, f"{name} not written by the image"

            for name in SERVICES:  # SIGTERM: each service shuts down cleanly in its container
                code = arena.stop(name)
                assert code == 0, f"{name} exited with {code}: {arena.log(name)}"
