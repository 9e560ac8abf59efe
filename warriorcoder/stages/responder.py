"""Responder: attacker and defenders answer each challenge; one ResponsePair per battle."""

from __future__ import annotations

from collections.abc import Sequence

from warriorcoder.arena.ids import battle_id, derive_seed
from warriorcoder.arena.mining import judges_for
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

    async def handle(self, challenges: Sequence[arena_pb2.Challenge]) -> list[arena_pb2.ResponsePair]:
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

        pairs = []
        for c in challenges:
            for defender in c.defenders:
                pairs.append(
                    arena_pb2.ResponsePair(
                        battle_id=battle_id(c.challenge_id, c.attacker, defender),
                        challenge_id=c.challenge_id,
                        round_id=c.round_id,
                        instruction=c.instruction,
                        model_a=c.attacker,
                        model_b=defender,
                        response_a=answers[(c.challenge_id, c.attacker)],
                        response_b=answers[(c.challenge_id, defender)],
                        judges=judges_for(c.attacker, defender, self.roster),
                        tests=c.tests,
                    )
                )
        return pairs
