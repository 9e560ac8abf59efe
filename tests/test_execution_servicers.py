"""gRPC with execution: SubmitInstructions with tests, JudgeBattle running the answers."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from test_grpc_servicers import Arena, make_config, run_served

from warriorcoder.arena.ids import battle_id
from warriorcoder.v1 import arena_pb2, services_pb2

NEW = "Write a Python function add(a, b) that returns the sum of two integers."
OTHER = "Write a Python function that returns the longest word of a sentence."
TESTS = "assert add(2, 3) == 5\n"


def test_submitted_tests_go_with_their_instructions(tmp_path: Path) -> None:
    async def body(arena: Arena) -> None:
        reply = await arena.challenger.SubmitInstructions(services_pb2.SubmitInstructionsRequest(
            instructions=[NEW, OTHER], tests=[TESTS, ""]))
        assert (reply.accepted, reply.rejected) == (2, 0)
        by_text = {c.instruction: c for c in arena.published}
        assert by_text[NEW].tests == TESTS and by_text[OTHER].tests == ""
        assert arena.store.challenge(by_text[NEW].challenge_id) == by_text[NEW]

    run_served(tmp_path, body)


@pytest.mark.parametrize(("tests", "message"), [
    ([TESTS], "tests has 1 entries for 2 instructions"),
    (["assert add(2, 3 == 5", ""], "tests[0]: tests do not parse as Python"),
    (["", "add(2, 3)"], "tests[1]: tests contain no assert statement"),
])
def test_bad_submitted_tests_are_invalid_arguments(tmp_path: Path, tests: list[str],
                                                   message: str) -> None:
    async def body(arena: Arena) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await arena.challenger.SubmitInstructions(services_pb2.SubmitInstructionsRequest(
                instructions=[NEW, OTHER], tests=tests))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in str(err.value.details())
        assert not arena.published

    run_served(tmp_path, body)


def test_judge_battle_runs_the_answers_against_the_tests(tmp_path: Path) -> None:
    config = make_config(execution={"enabled": True, "timeout_s": 5})
    # JudgeBattle judges the stored challenge and answers that the request names.
    challenge = arena_pb2.Challenge(challenge_id="c1", round_id="t1", instruction=NEW,
                                    attacker="alpha", defenders=["beta"], tests=TESTS)
    answers = [arena_pb2.Response(challenge_id="c1", model_id=model) for model in ("alpha", "beta")]
    answers[0].generation.text = "```python\ndef add(a, b):\n    return a + b\n```"
    answers[1].generation.text = "```python\ndef add(a, b):\n    return a * b\n```"
    request = arena_pb2.ResponsePair(battle_id=battle_id("c1", "alpha", "beta"), challenge_id="c1",
                                     model_a="alpha", model_b="beta")

    async def body(arena: Arena) -> None:
        arena.store.save_challenges([challenge])
        arena.store.save_responses(answers)
        reply = await arena.judge.JudgeBattle(request)
        assert reply.execution_a.status == arena_pb2.EXECUTION_STATUS_PASSED
        assert reply.execution_b.status == arena_pb2.EXECUTION_STATUS_FAILED
        assert len(reply.judgments) == 2

    run_served(tmp_path, body, config=config)
