from warriorcoder.v1 import arena_pb2 as _arena_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartRoundRequest(_message.Message):
    __slots__ = ("round_id", "challenges_per_attacker", "seed_instructions")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    CHALLENGES_PER_ATTACKER_FIELD_NUMBER: _ClassVar[int]
    SEED_INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    challenges_per_attacker: int
    seed_instructions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, round_id: _Optional[str] = ..., challenges_per_attacker: _Optional[int] = ..., seed_instructions: _Optional[_Iterable[str]] = ...) -> None: ...

class StartRoundResponse(_message.Message):
    __slots__ = ("round_id", "challenges")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    CHALLENGES_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    challenges: int
    def __init__(self, round_id: _Optional[str] = ..., challenges: _Optional[int] = ...) -> None: ...

class SubmitInstructionsRequest(_message.Message):
    __slots__ = ("round_id", "instructions", "tests")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    instructions: _containers.RepeatedScalarFieldContainer[str]
    tests: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, round_id: _Optional[str] = ..., instructions: _Optional[_Iterable[str]] = ..., tests: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitInstructionsResponse(_message.Message):
    __slots__ = ("accepted", "rejected", "already_accepted")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    already_accepted: int
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., already_accepted: _Optional[int] = ...) -> None: ...

class GetRoundStatusRequest(_message.Message):
    __slots__ = ("round_id",)
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    def __init__(self, round_id: _Optional[str] = ...) -> None: ...

class RoundStatus(_message.Message):
    __slots__ = ("round_id", "challenges", "responses", "judgments", "rated_battles", "failed_battles", "challenges_ready", "pending_challenges", "complete")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    CHALLENGES_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    JUDGMENTS_FIELD_NUMBER: _ClassVar[int]
    RATED_BATTLES_FIELD_NUMBER: _ClassVar[int]
    FAILED_BATTLES_FIELD_NUMBER: _ClassVar[int]
    CHALLENGES_READY_FIELD_NUMBER: _ClassVar[int]
    PENDING_CHALLENGES_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    challenges: int
    responses: int
    judgments: int
    rated_battles: int
    failed_battles: int
    challenges_ready: bool
    pending_challenges: int
    complete: bool
    def __init__(self, round_id: _Optional[str] = ..., challenges: _Optional[int] = ..., responses: _Optional[int] = ..., judgments: _Optional[int] = ..., rated_battles: _Optional[int] = ..., failed_battles: _Optional[int] = ..., challenges_ready: _Optional[bool] = ..., pending_challenges: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class RespondResponse(_message.Message):
    __slots__ = ("pairs",)
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[_arena_pb2.ResponsePair]
    def __init__(self, pairs: _Optional[_Iterable[_Union[_arena_pb2.ResponsePair, _Mapping]]] = ...) -> None: ...

class GetBattleRequest(_message.Message):
    __slots__ = ("battle_id",)
    BATTLE_ID_FIELD_NUMBER: _ClassVar[int]
    battle_id: str
    def __init__(self, battle_id: _Optional[str] = ...) -> None: ...

class GetLeaderboardRequest(_message.Message):
    __slots__ = ("round_id", "season", "arena")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    SEASON_FIELD_NUMBER: _ClassVar[int]
    ARENA_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    season: bool
    arena: str
    def __init__(self, round_id: _Optional[str] = ..., season: _Optional[bool] = ..., arena: _Optional[str] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("round_id", "kind", "output_dir", "season", "arena")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    SEASON_FIELD_NUMBER: _ClassVar[int]
    ARENA_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    kind: str
    output_dir: str
    season: bool
    arena: str
    def __init__(self, round_id: _Optional[str] = ..., kind: _Optional[str] = ..., output_dir: _Optional[str] = ..., season: _Optional[bool] = ..., arena: _Optional[str] = ...) -> None: ...

class ExportSummary(_message.Message):
    __slots__ = ("sft_records", "preference_records", "files", "manifest", "dataset_id", "duplicates", "skipped", "rounds")
    SFT_RECORDS_FIELD_NUMBER: _ClassVar[int]
    PREFERENCE_RECORDS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    sft_records: int
    preference_records: int
    files: _containers.RepeatedScalarFieldContainer[str]
    manifest: str
    dataset_id: str
    duplicates: int
    skipped: int
    rounds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sft_records: _Optional[int] = ..., preference_records: _Optional[int] = ..., files: _Optional[_Iterable[str]] = ..., manifest: _Optional[str] = ..., dataset_id: _Optional[str] = ..., duplicates: _Optional[int] = ..., skipped: _Optional[int] = ..., rounds: _Optional[_Iterable[str]] = ...) -> None: ...
