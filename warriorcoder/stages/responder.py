"""Responder: attacker and defenders answer each challenge; one ResponsePair per opening battle
of the challenge's tournament (attacker vs each defender, or every pair in round_robin)."""

from __future__ import annotations

from collections.abc import Sequence

from warriorcoder.arena.ids import battle_id, derive_seed
from warriorcoder.arena.mining import judges_for
from warriorcoder.arena.tournament import opening_battles
from warriorcoder.backends.base import ChatMessage, ChatRequest, GenerationError
from warriorcoder.stages.model_calls import ModelStage, generate_by_model, to_generation_pb
from warriorcoder.v1 import arena_pb2


class Responder(ModelStage):
    def _request(self, challenge: arena_pb2.Challenge, model_id: str) -> ChatRequest:
        expert = self.config.expert(model_id)
        # Both competitors of a challenge decode with the same seed and (by default) settings.
        sampling = self.config.answer_sampling(model_id)
        sampling = sampling.model_copy(
            update={"seed": derive_seed(self.config.seed, sampling.seed, challenge.challenge_id)}
        )
        messages = []
        if expert.system_prompt:
            messages.append(ChatMessage("system", expert.system_prompt))
        messages.append(ChatMessage("user", challenge.instruction))
        return ChatRequest(tuple(messages), sampling)

    async def handle(
        self, challenges: Sequence[arena_pb2.Challenge]
    ) -> list[arena_pb2.ResponsePair]:
        """Answers for every competitor (stored answers are reused, failed ones retried)."""
        answers: dict[tuple[str, str], arena_pb2.Response] = {}
        todo: list[tuple[arena_pb2.Challenge, str]] = []
        # One store read for the whole batch (a round trip per answer dominated the stage).
        stored_answers = await self.store.call(
            self.store.responses_of,
            [(c.challenge_id, m) for c in challenges for m in [c.attacker, *c.defenders]],
        )
        for c in challenges:
            for model_id in [c.attacker, *c.defenders]:
                stored = stored_answers.get((c.challenge_id, model_id))
                if stored is not None and not stored.error:
                    answers[(c.challenge_id, model_id)] = stored
                else:
                    todo.append((c, model_id))
        requests = [(m, self._request(c, m)) for c, m in todo]
        outcomes = await generate_by_model(self.backends, requests)
        fresh = []
        for (c, model_id), (_, request), outcome in zip(todo, requests, outcomes, strict=True):
            response = arena_pb2.Response(
                challenge_id=c.challenge_id,
                model_id=model_id,
                sampling=arena_pb2.Sampling(**request.sampling.model_dump()),
            )
            if isinstance(outcome, GenerationError):
                response.error = f"{model_id}: {outcome.reason} (after {outcome.attempts} attempts)"
            elif not outcome.text.strip():
                response.error = f"{model_id}: empty answer"
                response.generation.CopyFrom(to_generation_pb(outcome))
            else:
                response.generation.CopyFrom(to_generation_pb(outcome))
            fresh.append(response)
            answers[(c.challenge_id, model_id)] = response
        await self.store.call(self.store.save_responses, fresh)

        # The tournament's opening battles; the judge stage schedules any further ones.
        mode = self.config.selection.tournament
        pairs = []
        for c in challenges:
            for model_a, model_b in opening_battles(mode, c.attacker, c.defenders):
                pairs.append(
                    battle_pair(
                        c,
                        answers[(c.challenge_id, model_a)],
                        answers[(c.challenge_id, model_b)],
                        judges_for(model_a, model_b, self.roster),
                    )
                )
        return pairs


def battle_pair(
    challenge: arena_pb2.Challenge,
    response_a: arena_pb2.Response,
    response_b: arena_pb2.Response,
    judges: list[str],
) -> arena_pb2.ResponsePair:
    """The battle of two answers to `challenge` (model_a answered `response_a`)."""
    return arena_pb2.ResponsePair(
        battle_id=battle_id(challenge.challenge_id, response_a.model_id, response_b.model_id),
        challenge_id=challenge.challenge_id,
        round_id=challenge.round_id,
        instruction=challenge.instruction,
        model_a=response_a.model_id,
        model_b=response_b.model_id,
        response_a=response_a,
        response_b=response_b,
        judges=judges,
        tests=challenge.tests,
    )
