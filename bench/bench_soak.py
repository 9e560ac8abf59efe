"""Soak: battles pushed through the five services in waves, with an export after each wave.

Starts the same deployment as bench/bench_orchestration.py (Tansu, the nx-27017 MongoDB wire
server, the instant model server, the five services as processes) and submits `--waves` waves of
`--per-wave` instructions (one defender each, so battles = challenges) into one round. After each
wave it streams the round's export through the exporter's StreamRecords while probing every
service's gRPC health every 0.5 s, and reports per wave:

- battles/s of the wave (first submission to last battle stored),
- the export's records and seconds, and health probes that failed or took over 1 s during it,
- each service's resident memory (VmRSS) after the wave,
- the seconds the wave's submission took, and the CPU time per battle of every process during
  the wave (services, broker, MongoDB wire server),
- each service's time in MongoDB commands per battle during the wave (from its
  warriorcoder_store_command_seconds), and at the end the commands whose mean duration grew
  most from the first wave to the last: the store reads that still scale with the data stored.

The run passes when the last wave's battles/s is within 10% of the first's and no service's RSS
grew by more than 50 MiB from the end of the first wave to the end of the last (printed as
PASS/FAIL; the exit status is 1 on FAIL).

    .venv/bin/python bench/bench_soak.py --waves 10 --per-wave 10000
    .venv/bin/python bench/bench_soak.py --waves 3 --per-wave 500     # a quick look
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import grpc
import pymongo
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_orchestration import (
    Deployment,
    arena_config,
    cpu_seconds,
    deploy,
    infrastructure,
    instructions,
    process,
    rss_mib,
    stop_on_sigterm,
    submit,
    wait_battles,
)
from conftest import free_ports, wait_for_port

from warriorcoder.v1 import services_pb2, services_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT_TOLERANCE = 0.10
RSS_GROWTH_LIMIT_MIB = 50.0
# A store command needs this many calls in a wave for its mean duration to be compared.
MIN_CALLS = 10


@dataclass
class HealthProbe:
    """Probes each service's gRPC health from a thread until stopped; counts slow and failed
    probes."""

    deployment: Deployment
    interval_s: float = 0.5
    slow_s: float = 1.0
    probes: int = 0
    failed: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        channels = {name: grpc.insecure_channel(f"127.0.0.1:{port}")
                    for name, port in self.deployment.grpc_ports.items()}
        try:
            while True:
                for name, channel in channels.items():
                    self.probes += 1
                    t0 = time.perf_counter()
                    try:
                        reply = health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(service=""), timeout=5)
                        if reply.status != health_pb2.HealthCheckResponse.SERVING:
                            self.failed.append(f"{name}: {reply.status}")
                    except grpc.RpcError as error:
                        self.failed.append(f"{name}: {error.code().name}")
                    took = time.perf_counter() - t0
                    if took > self.slow_s:
                        self.slow.append(f"{name}: {took:.1f} s")
                if self._stop.wait(self.interval_s):
                    return
        finally:
            for channel in channels.values():
                channel.close()


StoreTimes = dict[tuple[str, str], tuple[float, float]]  # (collection, command) -> (calls, s)
_STORE_SERIES = re.compile(
    r'^warriorcoder_store_command_seconds_(count|sum)\{[^}]*collection="([^"]*)",'
    r'command="([^"]*)"[^}]*\} (\S+)$')


def store_times(d: Deployment, name: str) -> StoreTimes:
    """The service's MongoDB commands so far, from its warriorcoder_store_command_seconds."""
    calls: dict[tuple[str, str], float] = {}
    seconds: dict[tuple[str, str], float] = {}
    for line in d.metrics(name).splitlines():
        if (m := _STORE_SERIES.match(line)) is not None:
            kind, key, number = m.group(1), (m.group(2), m.group(3)), float(m.group(4))
            (calls if kind == "count" else seconds)[key] = number
    return {key: (calls.get(key, 0.0), seconds.get(key, 0.0)) for key in calls}


def since(now: StoreTimes, before: StoreTimes) -> StoreTimes:
    zero = (0.0, 0.0)
    return {key: (c - before.get(key, zero)[0], s - before.get(key, zero)[1])
            for key, (c, s) in now.items() if c > before.get(key, zero)[0]}


def stream_export(d: Deployment) -> int:
    """Records of the round's export, streamed through StreamRecords."""
    with grpc.insecure_channel(f"127.0.0.1:{d.grpc_ports['exporter']}") as channel:
        stub = services_pb2_grpc.ExporterStub(channel)
        return sum(1 for _ in stub.StreamRecords(
            services_pb2.ExportRequest(round_id=d.round_id), timeout=3600))


def run(args: argparse.Namespace) -> bool:
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    print(f"work folder: {workdir}")
    with ExitStack() as stack:
        infra = stack.enter_context(infrastructure(workdir))
        (model_port,) = free_ports(1)
        stack.enter_context(process(
            [sys.executable, str(ROOT / "bench" / "instant_model_server.py"), "--port",
             str(model_port), "--completion-tokens", str(args.answer_tokens)],
            workdir / "models.log"))
        wait_for_port(model_port)
        config = arena_config(f"soak-{uuid.uuid4().hex[:8]}", "openai",
                              f"http://127.0.0.1:{model_port}/v1", args.max_concurrency,
                              args.answer_tokens)
        d = deploy(stack, workdir, infra, config, judges=1,
                   poll_max_records=args.poll_max_records, partitions=args.partitions)
        battles = pymongo.MongoClient(d.mongo_uri)[d.database]["battles"]

        # Warm-up: every consumer joins its group before the first wave is timed.
        submit(d, instructions(args.warmup, f"{d.round_id}-warmup"), args.warmup)
        wait_battles(d, args.warmup, 120)

        rates: list[float] = []
        rss: list[dict[str, float]] = []
        store: list[dict[str, StoreTimes]] = []  # per wave and service: the wave's commands
        cpu: list[dict[str, float]] = []  # per wave and process: CPU ms per battle
        pids = {**infra["pids"], **{name: proc.pid for name, proc in d.procs.items()}}
        print(f"{'wave':>4} {'battles':>8} {'total':>8} {'battles/s':>9} {'export':>8} "
              f"{'export s':>8} {'health fail/slow':>16}  RSS MiB "
              + " ".join(f"{n:>10}" for n in d.procs))
        total = args.warmup
        for wave in range(1, args.waves + 1):
            texts = instructions(args.per_wave, f"{d.round_id}-wave{wave}")
            marks = {name: store_times(d, name) for name in d.procs}
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            t0 = time.perf_counter()
            submit(d, texts, args.submit_batch)
            submit_s = time.perf_counter() - t0
            total += args.per_wave
            rate = args.per_wave / (wait_battles(d, total, args.timeout_s) - t0)
            cpu.append({name: 1000 * (cpu_seconds(pid) - cpu0[name]) / args.per_wave
                        for name, pid in pids.items()})
            rates.append(rate)
            store.append({name: since(store_times(d, name), marks[name]) for name in d.procs})
            with HealthProbe(d) as probe:
                t1 = time.perf_counter()
                records = stream_export(d)
                export_s = time.perf_counter() - t1
            rss.append({name: rss_mib(proc.pid) for name, proc in d.procs.items()})
            health = f"{len(probe.failed)}/{len(probe.slow)} of {probe.probes}"
            print(f"{wave:>4} {args.per_wave:>8} {total:>8} {rate:>9.1f} {records:>8} "
                  f"{export_s:>8.1f} {health:>16}          "
                  + " ".join(f"{rss[-1][n]:>10.0f}" for n in d.procs), flush=True)
            per_battle = {n: 1000 * sum(s for _, s in store[-1][n].values()) / args.per_wave
                          for n in d.procs}
            print(f"{'':>58}store ms/battle "
                  + " ".join(f"{per_battle[n]:>10.2f}" for n in d.procs), flush=True)
            print(f"{'':>13}submit {submit_s:5.1f} s; CPU ms/battle: "
                  + ", ".join(f"{n} {ms:.2f}" for n, ms in cpu[-1].items()), flush=True)
            for line in (probe.failed + probe.slow)[:5]:
                print(f"       health: {line}")
        failed = battles.count_documents({"status": {"$ne": "BATTLE_STATUS_RATED"}})
        d.stop_services()

    ratio = rates[-1] / rates[0]
    growth = {name: rss[-1][name] - rss[0][name] for name in rss[0]}
    worst = max(growth, key=lambda n: growth[n])
    passed = ratio >= 1 - THROUGHPUT_TOLERANCE and growth[worst] < RSS_GROWTH_LIMIT_MIB
    print(f"\nlast wave / first wave battles/s: {ratio:.2f} (target >= "
          f"{1 - THROUGHPUT_TOLERANCE:.2f})")
    print("RSS growth, end of wave 1 -> end of last wave (MiB): "
          + ", ".join(f"{n} {g:+.0f}" for n, g in growth.items())
          + f" (target < {RSS_GROWTH_LIMIT_MIB:.0f})")
    print(f"failed battles: {failed}")
    print("store commands by ms per call, first wave -> last wave (the five that grew most):")
    for line in grown_commands(store[0], store[-1])[:5]:
        print(f"  {line}")
    print("PASS" if passed else "FAIL")
    return passed


def grown_commands(first: dict[str, StoreTimes], last: dict[str, StoreTimes]) -> list[str]:
    """Each service's commands called at least MIN_CALLS times in both waves, by how much their
    mean duration grew (the reads that still scale with the data stored come first)."""
    rows = []
    for name, commands in last.items():
        for key, (calls, seconds) in commands.items():
            before = first[name].get(key)
            if before is None or min(before[0], calls) < MIN_CALLS:
                continue
            ms_first, ms_last = 1000 * before[1] / before[0], 1000 * seconds / calls
            text = (f"{name}: {key[1]} {key[0]}: {ms_first:.1f} -> {ms_last:.1f} ms "
                    f"({before[0]:.0f} -> {calls:.0f} calls)")
            rows.append((ms_last - ms_first, text))
    return [text for _, text in sorted(rows, reverse=True)]


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--per-wave", type=int, default=10000, help="battles per wave")
    parser.add_argument("--poll-max-records", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=20, help="battles before wave 1")
    parser.add_argument("--submit-batch", type=int, default=1000)
    parser.add_argument("--timeout-s", type=float, default=3600,
                        help="longest wait for one wave's battles")
    args = parser.parse_args()
    if args.waves < 2 or args.per_wave < 1 or args.warmup < 1:
        parser.error("--waves must be >= 2, --per-wave and --warmup >= 1")
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
