"""Respond and JudgeBattle work from the store's own records, never from what a caller wrote.

A request names a challenge (Respond) or a battle (JudgeBattle). The servicer loads the stored
challenge, and for a battle the stored answers, and hands those to the stage. Any content the
request also carries (an instruction, tests, an answer's text, the judges...) must equal what
is stored, or the call is refused with INVALID_ARGUMENT naming the first field that differs;
nothing is generated or stored then. So no caller, authenticated or not, can plant a prompt, an
answer or a verdict into a round's record (docs/api.md).
"""

from __future__ import annotations

import itertools

from google.protobuf.message import Message

from warriorcoder.arena.ids import battle_id
from warriorcoder.arena.mining import judges_for
from warriorcoder.arena.tournament import tournament_models
from warriorcoder.config import ArenaConfig
from warriorcoder.service.grpc_server import InvalidArgument, NotFound
from warriorcoder.service.servicers.checks import check_roster_member, check_seats
from warriorcoder.stages.responder import battle_pair
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

__all__ = ["first_difference", "stored_battle", "stored_challenge"]


def first_difference(carried: Message, stored: Message, prefix: str = "") -> str | None:
    """The path of the first field that `carried` sets to a value other than `stored`'s
    (e.g. "response_a.generation.text"), or None when every field it sets matches. Fields it
    leaves unset are not compared: a request may name ids only."""
    for field, value in carried.ListFields():
        path = f"{prefix}{field.name}"
        other = getattr(stored, field.name)
        if field.is_repeated:
            if list(value) != list(other):
                return path
        elif field.message_type is not None:
            if not stored.HasField(field.name):
                return path
            inner = first_difference(value, other, f"{path}.")
            if inner is not None:
                return inner
        elif value != other:
            return path
    return None


def _refuse_difference(carried: Message, stored: Message, what: str) -> None:
    path = first_difference(carried, stored)
    if path is not None:
        raise InvalidArgument(f"{path} does not match {what}: send the ids only, or the stored "
                              "content unchanged")


def stored_challenge(
    store: ArenaStore, config: ArenaConfig, request: arena_pb2.Challenge
) -> arena_pb2.Challenge:
    """The stored challenge that `request` names (NotFound when there is none), after checking
    that every field the request carries matches it and that its experts are of the roster."""
    if not request.challenge_id:
        raise InvalidArgument("challenge_id is required")
    stored = store.challenge(request.challenge_id)
    if stored is None:
        raise NotFound(f"challenge {request.challenge_id!r} is not in the store: only "
                       "challenges the challenger stored are answered")
    _refuse_difference(request, stored, f"stored challenge {request.challenge_id!r}")
    check_roster_member(config, "stored challenge's attacker", stored.attacker)
    check_seats(config, "stored challenge's defenders", stored.defenders,
                taken=(stored.attacker,), taken_as="is the attacker",
                empty="a challenge needs at least one defender")
    return stored


def stored_battle(
    store: ArenaStore, config: ArenaConfig, request: arena_pb2.ResponsePair
) -> arena_pb2.ResponsePair:
    """The battle that `request` names, built from the stored challenge and answers exactly as
    the responder builds it; every field the request carries must match it."""
    for name in ("battle_id", "challenge_id", "model_a", "model_b"):
        if not getattr(request, name):
            raise InvalidArgument(f"{name} is required")
    check_roster_member(config, "model_a", request.model_a)
    check_roster_member(config, "model_b", request.model_b)
    if request.model_a == request.model_b:
        raise InvalidArgument(f"model_a and model_b are both {request.model_a!r}")
    if request.judges:
        check_seats(config, "judges", request.judges, taken=(request.model_a, request.model_b),
                    taken_as="competes in this battle", empty="")
    challenge = store.challenge(request.challenge_id)
    if challenge is None:
        raise NotFound(f"challenge {request.challenge_id!r} is not in the store")
    match = (request.model_a, request.model_b)
    battles = list(itertools.combinations(
        tournament_models(challenge.attacker, challenge.defenders), 2))
    if match not in battles:
        raise InvalidArgument(
            f"{request.model_a!r} vs {request.model_b!r} is not a battle of challenge "
            f"{request.challenge_id!r}; its battles are {[f'{a} vs {b}' for a, b in battles]}")
    expected_id = battle_id(request.challenge_id, *match)
    if request.battle_id != expected_id:
        raise InvalidArgument(f"battle_id {request.battle_id!r} is not the id of "
                              f"{request.model_a!r} vs {request.model_b!r} on challenge "
                              f"{request.challenge_id!r} ({expected_id!r})")
    answers = store.responses_of([(request.challenge_id, m) for m in match])
    for model in match:
        if (request.challenge_id, model) not in answers:
            raise NotFound(f"{model!r} has no stored answer to challenge "
                           f"{request.challenge_id!r}: Respond first")
    try:
        judges = judges_for(*match, [e.id for e in config.roster])
    except ValueError as error:
        raise InvalidArgument(str(error)) from None
    pair = battle_pair(challenge, answers[(request.challenge_id, match[0])],
                       answers[(request.challenge_id, match[1])], judges)
    _refuse_difference(request, pair, f"stored battle {expected_id!r}")
    return pair
