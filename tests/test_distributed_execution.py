"""A distributed round with execution on: five service processes over the real broker and the
MongoDB wire server, experts behind the OpenAI-compatible fake server answering with code and
tests; the judge service runs the answers in the sandbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import yaml
from distributed_harness import arena_config, running_arena
from fake_openai_server import FakeOpenAIServer, Reply

from warriorcoder.config import parse_config
from warriorcoder.stages.embedded import run_arena
from warriorcoder.storage.store import from_document
from warriorcoder.v1 import arena_pb2, services_pb2, services_pb2_grpc

MINED = "Write a Python function add(a, b) that returns the sum of the two integers a and b."
USER_WITH_TESTS = "Write a Python function mul(a, b) that returns the product of a and b."
USER_WITHOUT_TESTS = "Write a Python function that reverses a string."
ADD_TESTS = "```python\nassert add(2, 3) == 5\nassert add(-1, 1) == 0\n```"
MUL_TESTS = "assert mul(2, 3) == 6\nassert mul(0, 7) == 0\n"


def code(body: str, name: str) -> str:
    return f"```python\ndef {name}(a, b):\n    return {body}\n```"


REPLIES = (
    # Judges are pre-filled with "[[" and always answer "A]]": each self-contradicts, a tie.
    Reply("Assistant A's Answer", "A]]", endpoint="completion"),
    Reply("Write tests for the programming task", ADD_TESTS, endpoint="chat"),
    Reply("add(a, b)", code("a + b", "add"), model="m-a", endpoint="chat"),
    Reply("add(a, b)", code("a - b", "add"), model="m-b", endpoint="chat"),
    Reply("add(a, b)", code("b + a", "add"), model="m-c", endpoint="chat"),
    Reply("mul(a, b)", code("a * b", "mul"), model="m-a", endpoint="chat"),
    Reply("mul(a, b)", code("b * a", "mul"), model="m-b", endpoint="chat"),
    Reply("mul(a, b)", code("a + b", "mul"), model="m-c", endpoint="chat"),
)
PASSES = {MINED: {"a", "c"}, USER_WITH_TESTS: {"a", "b"}}


def test_distributed_round_with_execution_matches_the_embedded_run(
    tmp_path: Path, kafka_bootstrap: str, mongo_uri: str, unique_kafka_prefix: str
) -> None:
    user_file = tmp_path / "user.jsonl"
    user_file.write_text(json.dumps({"instruction": USER_WITH_TESTS, "tests": MUL_TESTS}) + "\n")
    with FakeOpenAIServer() as models:
        # Mining completes every pre-query prefix with the same instruction: one mined challenge.
        models.set_behaviour("normal", completion_text=MINED, replies=REPLIES)
        config = arena_config(models.base_url, f"dx-{uuid.uuid4().hex[:8]}",
                              instructions=[USER_WITHOUT_TESTS])
        config["challenger"]["user_instructions_file"] = str(user_file)
        config["execution"] = {"enabled": True, "timeout_s": 10}
        # Attacker vs defenders only: this test is about execution (tournament battles in the
        # distributed run are covered by test_distributed and test_distributed_faults).
        config["selection"] = {"tournament": "none"}
        with running_arena(tmp_path, config, kafka_bootstrap=kafka_bootstrap,
                           mongo_uri=mongo_uri, prefix=unique_kafka_prefix) as arena:
            channel, stub = arena.stub("challenger", services_pb2_grpc.ChallengerStub)
            with channel:
                started = stub.StartRound(services_pb2.StartRoundRequest(), timeout=60)
            assert started.challenges == 3, arena.log("challenger")
            status = arena.wait_round_done(battles=6)
            assert status.rated_battles == 6, arena.log("judge")
            db = arena.database()
            challenges = {d["_id"]: from_document(d, arena_pb2.Challenge)
                          for d in db["challenges"].find({"round_id": arena.round_id})}
            battles = [from_document(d, arena_pb2.RatedBattle)
                       for d in db["battles"].find({"round_id": arena.round_id})]
            out = tmp_path / "export"
            channel, exporter = arena.stub("exporter", services_pb2_grpc.ExporterStub)
            with channel:
                exporter.WriteExport(services_pb2.ExportRequest(output_dir=str(out)), timeout=30)

        by_text = {c.instruction: c for c in challenges.values()}
        assert by_text[MINED].source == "mined"
        assert by_text[MINED].tests == "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
        assert by_text[USER_WITH_TESTS].tests == MUL_TESTS
        assert by_text[USER_WITHOUT_TESTS].tests == ""
        for b in battles:
            instruction = challenges[b.challenge_id].instruction
            if instruction == USER_WITHOUT_TESTS:
                assert not b.HasField("execution_a") and b.local_score_a == 0.5
                continue
            passes = PASSES[instruction]
            for result, model in ((b.execution_a, b.model_a), (b.execution_b, b.model_b)):
                expected = "PASSED" if model in passes else "FAILED"
                assert arena_pb2.ExecutionStatus.Name(result.status).endswith(expected)
            a, b_ = b.model_a in passes, b.model_b in passes
            assert b.judge_score_a == 0.5
            assert b.execution_score_a == (0.5 if a == b_ else float(a))
            assert b.local_score_a == 0.25 + 0.5 * b.execution_score_a

        # The same config embedded gives the same dataset, record for record.
        embedded = parse_config(yaml.safe_load(yaml.safe_dump(config)))
        asyncio.run(run_arena(embedded, tmp_path / "embedded"))
    for name in ("sft.jsonl", "preference.jsonl"):
        assert (out / name).read_text() == (tmp_path / "embedded" / "export" / name).read_text()
    preference = [json.loads(line) for line in (out / "preference.jsonl").read_text().splitlines()]
    # Execution decides the tied judges: the rejected answers are the ones that failed.
    rejected = {p["rejected_model"] for p in preference}
    assert rejected and rejected <= {"b", "c"}
