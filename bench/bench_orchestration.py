"""Orchestration throughput: battles per second through the five services, Kafka and MongoDB.

Starts a Tansu broker (memory storage), an nx-27017 MongoDB wire server, an instant model
server (bench/instant_model_server.py, or the in-process fake backend with --backend fake) and
the five services as processes (`python -m warriorcoder.cli serve NAME`), submits N user
instructions through the challenger's SubmitInstructions (one defender each, so battles =
challenges), and times from the first submission to the last battle stored by the rater.

    .venv/bin/python bench/bench_orchestration.py --battles 2000 --judges 1
    .venv/bin/python bench/bench_orchestration.py --battles 2000 --judges 2
    .venv/bin/python bench/bench_orchestration.py --battles 500 --profile .run/profiles

Also prints each process's CPU seconds during the run (the first-level profile: which process
burns the cores) and each service's resident memory (VmRSS from /proc) after the run, with the
services still up. --profile runs the services under cProfile and prints their top functions.
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pymongo
import yaml
from pymongo.collection import Collection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import free_ports, mongo_server, wait_for_port
from distributed_harness import wait_for_health
from kafka_broker import _wait_for_broker, tansu_binary

from warriorcoder.v1 import services_pb2, services_pb2_grpc

SERVICES = ("challenger", "responder", "judge", "rater", "exporter")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that the benchmark's ExitStack stops what it started: a
    benchmark killed otherwise leaves the broker, the store and the services running."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def instructions(n: int, seed: str) -> list[str]:
    """n distinct instructions (dedup and decontamination are off in the bench config)."""
    return [f"Write a Python function number {i} of run {seed} that returns {i} squared."
            for i in range(n)]


def arena_config(round_id: str, backend: str, model_url: str, max_concurrency: int,
                 answer_tokens: int) -> dict[str, Any]:
    """Three experts, one defender per challenge, pre-filled judging, no challenge filters."""
    def expert(name: str) -> dict[str, Any]:
        if backend == "fake":
            return {"id": name, "backend": "fake", "model": "fake",
                    "max_concurrency": max_concurrency}
        return {"id": name, "backend": "openai", "endpoint": model_url, "model": f"m-{name}",
                "chat_template": {"builtin": "chatml"}, "max_retries": 1, "timeout_s": 60,
                "max_concurrency": max_concurrency}

    return {
        "round_id": round_id,
        "roster": [expert("a"), expert("b"), expert("c")],
        "challenger": {"per_setting": 0, "defenders": 1, "max_chars": 4000,
                       "dedup": {"enabled": False}, "decontamination": {"enabled": False}},
        "responder": {"sampling": {"temperature": 0.0, "top_p": 1.0,
                                   "max_tokens": answer_tokens}},
        "judge": {"verdict_mode": "prefill", "max_tokens": 4, "retries_on_invalid": 0},
        "rating": {"bootstrap_rounds": 10},
    }


@dataclass
class Deployment:
    """The broker, the database, the model server and the services of one benchmark run."""

    workdir: Path
    env: dict[str, str]
    round_id: str
    mongo_uri: str
    database: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    grpc_ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    profile_dir: Path | None = None

    def start_service(self, name: str, service: str) -> None:
        """Start one service process (`name` may be a replica name like judge-2)."""
        grpc_port, metrics_port = free_ports(2)
        env = {**self.env, "WARRIORCODER_GRPC_PORT": str(grpc_port),
               "WARRIORCODER_METRICS_PORT": str(metrics_port)}
        cmd = [sys.executable]
        if self.profile_dir is not None:
            cmd += ["-m", "cProfile", "-o", str(self.profile_dir / f"{name}.prof")]
        cmd += ["-m", "warriorcoder.cli", "serve", service]
        log = (self.workdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=ROOT)
        self.grpc_ports[name] = grpc_port
        self.metrics_ports[name] = metrics_port

    def metrics(self, name: str) -> str:
        """The service's /metrics page."""
        url = f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"
        return str(urllib.request.urlopen(url, timeout=10).read().decode())

    def batches(self, name: str) -> tuple[int, float, float]:
        """(handler calls, handler seconds, messages consumed) so far, from /metrics."""
        calls = seconds = consumed = 0.0
        for line in self.metrics(name).splitlines():
            if line.startswith("warriorcoder_handler_seconds_count"):
                calls += float(line.rsplit(" ", 1)[1])
            elif line.startswith("warriorcoder_handler_seconds_sum"):
                seconds += float(line.rsplit(" ", 1)[1])
            elif line.startswith("warriorcoder_messages_consumed_total"):
                consumed += float(line.rsplit(" ", 1)[1])
        return int(calls), seconds, consumed

    def wait_serving(self, name: str, timeout_s: float = 90) -> None:
        wait_for_health(name, f"127.0.0.1:{self.grpc_ports[name]}", self.procs[name],
                        lambda: self.log(name), timeout_s)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text()[-3000:]

    def stop_services(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"warning: {name} did not stop in 30 s; killed", file=sys.stderr)
                proc.kill()
                proc.wait()


@contextmanager
def process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A helper process that is killed on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def infrastructure(workdir: Path) -> Iterator[dict[str, Any]]:
    """Tansu and nx-27017; yields their addresses and processes."""
    with ExitStack() as stack:
        (port,) = free_ports(1)
        bootstrap = f"127.0.0.1:{port}"
        tansu_log = workdir / "tansu.log"
        tansu = stack.enter_context(process(
            [str(tansu_binary()), "broker", "--listener-url", f"tcp://{bootstrap}",
             "--advertised-listener-url", f"tcp://{bootstrap}", "--storage-engine",
             "memory://tansu/"], tansu_log))
        _wait_for_broker(bootstrap, tansu, tansu_log)
        mongo_uri = stack.enter_context(mongo_server(workdir / "mongo"))
        mongo_pid = int((workdir / "mongo" / "nx-27017.pid").read_text().strip())
        yield {"bootstrap": bootstrap, "mongo_uri": mongo_uri,
               "pids": {"tansu": tansu.pid, "nx-27017": mongo_pid}}


def submit(deployment: Deployment, texts: list[str], batch: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{deployment.grpc_ports['challenger']}") as channel:
        stub = services_pb2_grpc.ChallengerStub(channel)
        for i in range(0, len(texts), batch):
            reply = stub.SubmitInstructions(
                services_pb2.SubmitInstructionsRequest(instructions=texts[i:i + batch]),
                timeout=600)
            if reply.rejected:
                raise RuntimeError(f"{reply.rejected} instructions rejected by the challenger")


def print_profiles(profile_dir: Path, top: int) -> None:
    for path in sorted(profile_dir.glob("*.prof")):
        print(f"\n=== cProfile of {path.stem} (main thread, by own time) ===")
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)


def deploy(stack: ExitStack, workdir: Path, infra: dict[str, Any], config: dict[str, Any], *,
           judges: int, poll_max_records: int, partitions: int,
           profile_dir: Path | None = None) -> Deployment:
    """Start the five services (`judges` judge replicas) on `infra` with the arena `config`;
    they are stopped when `stack` closes."""
    config_path = workdir / "arena.yaml"
    config_path.write_text(yaml.safe_dump(config))
    database = f"bench{uuid.uuid4().hex[:8]}"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(
               [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "WARRIORCODER_ARENA_CONFIG": str(config_path),
           "WARRIORCODER_KAFKA_BOOTSTRAP_SERVERS": infra["bootstrap"],
           "WARRIORCODER_KAFKA_TOPIC_PREFIX": "bench.",
           "WARRIORCODER_KAFKA_GROUP_PREFIX": "bench",
           "WARRIORCODER_KAFKA_SESSION_TIMEOUT_MS": "6000",
           "WARRIORCODER_KAFKA_POLL_MAX_RECORDS": str(poll_max_records),
           "WARRIORCODER_KAFKA_PARTITIONS": str(partitions),
           "WARRIORCODER_MONGO_URI": infra["mongo_uri"],
           "WARRIORCODER_MONGO_DATABASE": database,
           "WARRIORCODER_GRPC_HOST": "127.0.0.1",
           "WARRIORCODER_SHUTDOWN_GRACE_S": "2",
           "WARRIORCODER_LOG_LEVEL": "WARNING"}
    d = Deployment(workdir, env, config["round_id"], infra["mongo_uri"], database,
                   profile_dir=profile_dir)
    stack.callback(d.stop_services)
    names = [("challenger", "challenger"), ("responder", "responder")]
    names += [(f"judge-{i + 1}" if judges > 1 else "judge", "judge") for i in range(judges)]
    names += [("rater", "rater"), ("exporter", "exporter")]
    # The challenger first: it creates the topics before the others race to do it.
    d.start_service(*names[0])
    d.wait_serving(names[0][0])
    for name, service in names[1:]:
        d.start_service(name, service)
    for name, _ in names[1:]:
        d.wait_serving(name)
    return d


def stored_battles(battles: Collection[Any]) -> int:
    """Battles stored so far, by the count the server keeps (the run's database holds only this
    run's battles). Even that count reads a table on the MongoDB wire server (about 70 ms at
    20,000 battles), so polls go to `rated_battles` and the store is asked once at the end."""
    return battles.estimated_document_count()


def rated_battles(d: Deployment) -> int:
    """Battles the rater has stored (rated or failed) since it started, from its /metrics: a
    poll that costs the store nothing, however many battles it holds."""
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in d.metrics("rater").splitlines()
                   if line.startswith("warriorcoder_battles_total")))


def wait_battles(d: Deployment, count: int, timeout_s: float,
                 between_polls: Callable[[], None] = lambda: None) -> float:
    """Wait until the rater has stored `count` battles in all; return the perf_counter time at
    which its counter reached `count`. Polls the rater's counter every 0.1 s (calling
    `between_polls` each time) and the store every 5 s, and checks the store at the end: a
    redelivered batch is counted twice by the counter (never by the store), and a restarted
    rater starts its counter from zero."""
    deadline = time.monotonic() + timeout_s
    reached: float | None = None
    last_store_check = time.monotonic()
    with pymongo.MongoClient(d.mongo_uri) as client:
        battles = client[d.database]["battles"]
        while True:
            if reached is None and rated_battles(d) >= count:
                reached = time.perf_counter()
            if reached is not None or time.monotonic() - last_store_check > 5:
                last_store_check = time.monotonic()
                if stored_battles(battles) >= count:
                    return reached if reached is not None else time.perf_counter()
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {stored_battles(battles)} of {count} battles after "
                                   f"{timeout_s}s")
            between_polls()
            time.sleep(0.1)


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    print(f"work folder: {workdir}")
    profile_dir = None
    if args.profile:
        profile_dir = Path(args.profile).resolve()
        profile_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        infra = stack.enter_context(infrastructure(workdir))
        pids: dict[str, int] = dict(infra["pids"])
        model_url = ""
        if args.backend == "openai":
            (model_port,) = free_ports(1)
            server = stack.enter_context(process(
                [sys.executable, str(ROOT / "bench" / "instant_model_server.py"), "--port",
                 str(model_port), "--completion-tokens", str(args.answer_tokens)],
                workdir / "models.log"))
            wait_for_port(model_port)
            pids["model-server"] = server.pid
            model_url = f"http://127.0.0.1:{model_port}/v1"
        round_id = f"bench-{uuid.uuid4().hex[:8]}"
        config = arena_config(round_id, args.backend, model_url, args.max_concurrency,
                              args.answer_tokens)
        d = deploy(stack, workdir, infra, config, judges=args.judges,
                   poll_max_records=args.poll_max_records, partitions=args.partitions,
                   profile_dir=profile_dir)
        pids.update({name: proc.pid for name, proc in d.procs.items()})
        database = d.database

        battles = pymongo.MongoClient(infra["mongo_uri"])[database]["battles"]
        # Warm-up: a few battles first, so that every consumer has joined its group.
        submit(d, instructions(args.warmup, "warmup"), args.warmup)
        wait_battles(d, args.warmup, 120)

        texts = instructions(args.battles, round_id)
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        looped = [name for name in d.procs if name != "challenger"]
        batches0 = {name: d.batches(name) for name in looped}
        t0 = time.perf_counter()
        submit(d, texts, args.submit_batch)
        t_submitted = time.perf_counter() - t0
        peak_rss: dict[str, float] = {}
        target = args.warmup + args.battles

        def sample_rss() -> None:
            for name in d.procs:
                peak_rss[name] = max(peak_rss.get(name, 0.0), rss_mib(pids[name]))

        elapsed = wait_battles(d, target, args.timeout_s, sample_rss) - t0
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        batches = {name: tuple(b - a for a, b in zip(batches0[name], d.batches(name),
                                                      strict=True)) for name in looped}
        time.sleep(1.0)  # steady state: the run is over, the services are idle but up
        rss = {name: rss_mib(pids[name]) for name in d.procs}
        failed = battles.count_documents({"status": {"$ne": "BATTLE_STATUS_RATED"}})

        print(f"\nbackend {args.backend}, {args.judges} judge replica(s), "
              f"poll_max_records {args.poll_max_records}, partitions {args.partitions}, "
              f"max_concurrency {args.max_concurrency}")
        print(f"battles: {args.battles} in {elapsed:.2f} s -> {args.battles / elapsed:.0f} "
              f"battles/s (submission took {t_submitted:.2f} s; failed battles: {failed})")
        print(f"CPU seconds during the run (sum {sum(cpu.values()):.1f} over {elapsed:.1f} s "
              "wall on 2 cores):")
        for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<14} {seconds:6.1f} s  ({seconds / elapsed:5.0%} of a core)")
        print("stage loops: batches, mean records per batch, mean handler time per batch, "
              "share of the wall time in the handler")
        for name, (calls, seconds, consumed) in batches.items():
            if calls:
                print(f"  {name:<14} {int(calls):5d}  {consumed / calls:6.1f} records  "
                      f"{seconds / calls * 1000:7.1f} ms  {seconds / elapsed:5.0%}")
        print("resident memory (MiB): peak during run / after run")
        for name in d.procs:
            print(f"  {name:<14} {peak_rss[name]:6.0f} / {rss[name]:6.0f}")
        d.stop_services()
    if profile_dir is not None:
        print_profiles(profile_dir, args.top)


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--battles", type=int, default=2000)
    parser.add_argument("--judges", type=int, default=1, help="judge replicas")
    parser.add_argument("--backend", choices=("openai", "fake"), default="openai",
                        help="openai: the instant HTTP model server; fake: in-process models")
    parser.add_argument("--poll-max-records", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--submit-batch", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument("--profile", help="folder for cProfile output of each service")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile")
    args = parser.parse_args()
    if args.battles < 1 or args.judges < 1 or args.warmup < 1:
        parser.error("--battles, --judges and --warmup must be >= 1")
    run(args)


if __name__ == "__main__":
    main()
