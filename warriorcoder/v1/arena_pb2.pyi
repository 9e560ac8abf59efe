from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATUS_UNSPECIFIED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_PASSED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_FAILED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_TIMEOUT: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_KILLED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_ERROR: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_NO_CODE: _ClassVar[ExecutionStatus]

class TestCaseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEST_CASE_STATUS_UNSPECIFIED: _ClassVar[TestCaseStatus]
    TEST_CASE_STATUS_PASSED: _ClassVar[TestCaseStatus]
    TEST_CASE_STATUS_FAILED: _ClassVar[TestCaseStatus]
    TEST_CASE_STATUS_ERROR: _ClassVar[TestCaseStatus]
    TEST_CASE_STATUS_TIMEOUT: _ClassVar[TestCaseStatus]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_A: _ClassVar[Verdict]
    VERDICT_B: _ClassVar[Verdict]
    VERDICT_TIE: _ClassVar[Verdict]
    VERDICT_INVALID: _ClassVar[Verdict]

class Order(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_UNSPECIFIED: _ClassVar[Order]
    ORDER_AB: _ClassVar[Order]
    ORDER_BA: _ClassVar[Order]

class BattleStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATTLE_STATUS_UNSPECIFIED: _ClassVar[BattleStatus]
    BATTLE_STATUS_RATED: _ClassVar[BattleStatus]
    BATTLE_STATUS_FAILED: _ClassVar[BattleStatus]
EXECUTION_STATUS_UNSPECIFIED: ExecutionStatus
EXECUTION_STATUS_PASSED: ExecutionStatus
EXECUTION_STATUS_FAILED: ExecutionStatus
EXECUTION_STATUS_TIMEOUT: ExecutionStatus
EXECUTION_STATUS_KILLED: ExecutionStatus
EXECUTION_STATUS_ERROR: ExecutionStatus
EXECUTION_STATUS_NO_CODE: ExecutionStatus
TEST_CASE_STATUS_UNSPECIFIED: TestCaseStatus
TEST_CASE_STATUS_PASSED: TestCaseStatus
TEST_CASE_STATUS_FAILED: TestCaseStatus
TEST_CASE_STATUS_ERROR: TestCaseStatus
TEST_CASE_STATUS_TIMEOUT: TestCaseStatus
VERDICT_UNSPECIFIED: Verdict
VERDICT_A: Verdict
VERDICT_B: Verdict
VERDICT_TIE: Verdict
VERDICT_INVALID: Verdict
ORDER_UNSPECIFIED: Order
ORDER_AB: Order
ORDER_BA: Order
BATTLE_STATUS_UNSPECIFIED: BattleStatus
BATTLE_STATUS_RATED: BattleStatus
BATTLE_STATUS_FAILED: BattleStatus

class Sampling(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens", "seed")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class Generation(_message.Message):
    __slots__ = ("model_id", "text", "prompt_tokens", "completion_tokens", "latency_s", "finish_reason")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str
    def __init__(self, model_id: _Optional[str] = ..., text: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., latency_s: _Optional[float] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class Challenge(_message.Message):
    __slots__ = ("challenge_id", "round_id", "instruction", "attacker", "source", "defenders", "quality", "mining", "tests", "tests_generation")
    CHALLENGE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    ATTACKER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DEFENDERS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    MINING_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    TESTS_GENERATION_FIELD_NUMBER: _ClassVar[int]
    challenge_id: str
    round_id: str
    instruction: str
    attacker: str
    source: str
    defenders: _containers.RepeatedScalarFieldContainer[str]
    quality: float
    mining: Generation
    tests: str
    tests_generation: Generation
    def __init__(self, challenge_id: _Optional[str] = ..., round_id: _Optional[str] = ..., instruction: _Optional[str] = ..., attacker: _Optional[str] = ..., source: _Optional[str] = ..., defenders: _Optional[_Iterable[str]] = ..., quality: _Optional[float] = ..., mining: _Optional[_Union[Generation, _Mapping]] = ..., tests: _Optional[str] = ..., tests_generation: _Optional[_Union[Generation, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("challenge_id", "model_id", "generation", "sampling", "error")
    CHALLENGE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    challenge_id: str
    model_id: str
    generation: Generation
    sampling: Sampling
    error: str
    def __init__(self, challenge_id: _Optional[str] = ..., model_id: _Optional[str] = ..., generation: _Optional[_Union[Generation, _Mapping]] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class ResponsePair(_message.Message):
    __slots__ = ("battle_id", "challenge_id", "round_id", "instruction", "model_a", "model_b", "response_a", "response_b", "judges", "tests")
    BATTLE_ID_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_A_FIELD_NUMBER: _ClassVar[int]
    MODEL_B_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_A_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_B_FIELD_NUMBER: _ClassVar[int]
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    battle_id: str
    challenge_id: str
    round_id: str
    instruction: str
    model_a: str
    model_b: str
    response_a: Response
    response_b: Response
    judges: _containers.RepeatedScalarFieldContainer[str]
    tests: str
    def __init__(self, battle_id: _Optional[str] = ..., challenge_id: _Optional[str] = ..., round_id: _Optional[str] = ..., instruction: _Optional[str] = ..., model_a: _Optional[str] = ..., model_b: _Optional[str] = ..., response_a: _Optional[_Union[Response, _Mapping]] = ..., response_b: _Optional[_Union[Response, _Mapping]] = ..., judges: _Optional[_Iterable[str]] = ..., tests: _Optional[str] = ...) -> None: ...

class ExecutionResult(_message.Message):
    __slots__ = ("execution_id", "model_id", "status", "reason", "duration_s", "stdout", "stderr", "exit_code", "isolation", "tests", "tests_passed", "tests_total")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    TESTS_PASSED_FIELD_NUMBER: _ClassVar[int]
    TESTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    model_id: str
    status: ExecutionStatus
    reason: str
    duration_s: float
    stdout: str
    stderr: str
    exit_code: int
    isolation: str
    tests: _containers.RepeatedCompositeFieldContainer[TestCaseResult]
    tests_passed: int
    tests_total: int
    def __init__(self, execution_id: _Optional[str] = ..., model_id: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., reason: _Optional[str] = ..., duration_s: _Optional[float] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., exit_code: _Optional[int] = ..., isolation: _Optional[str] = ..., tests: _Optional[_Iterable[_Union[TestCaseResult, _Mapping]]] = ..., tests_passed: _Optional[int] = ..., tests_total: _Optional[int] = ...) -> None: ...

class TestCaseResult(_message.Message):
    __slots__ = ("name", "status", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: TestCaseStatus
    message: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[TestCaseStatus, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Judgment(_message.Message):
    __slots__ = ("judgment_id", "battle_id", "judge", "order", "position_verdict", "verdict", "generation", "attempts", "error", "spent_tokens", "spent_calls", "strong", "soft")
    JUDGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BATTLE_ID_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    POSITION_VERDICT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SPENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SPENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    STRONG_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    judgment_id: str
    battle_id: str
    judge: str
    order: Order
    position_verdict: Verdict
    verdict: Verdict
    generation: Generation
    attempts: int
    error: str
    spent_tokens: int
    spent_calls: int
    strong: bool
    soft: VerdictProbabilities
    def __init__(self, judgment_id: _Optional[str] = ..., battle_id: _Optional[str] = ..., judge: _Optional[str] = ..., order: _Optional[_Union[Order, str]] = ..., position_verdict: _Optional[_Union[Verdict, str]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., generation: _Optional[_Union[Generation, _Mapping]] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ..., spent_tokens: _Optional[int] = ..., spent_calls: _Optional[int] = ..., strong: _Optional[bool] = ..., soft: _Optional[_Union[VerdictProbabilities, _Mapping]] = ...) -> None: ...

class VerdictProbabilities(_message.Message):
    __slots__ = ("a", "b", "tie")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    TIE_FIELD_NUMBER: _ClassVar[int]
    a: float
    b: float
    tie: float
    def __init__(self, a: _Optional[float] = ..., b: _Optional[float] = ..., tie: _Optional[float] = ...) -> None: ...

class Vote(_message.Message):
    __slots__ = ("judge", "verdict", "strong", "weight", "battle_id")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    STRONG_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    BATTLE_ID_FIELD_NUMBER: _ClassVar[int]
    judge: str
    verdict: Verdict
    strong: bool
    weight: float
    battle_id: str
    def __init__(self, judge: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., strong: _Optional[bool] = ..., weight: _Optional[float] = ..., battle_id: _Optional[str] = ...) -> None: ...

class BattleJudgments(_message.Message):
    __slots__ = ("pair", "judgments", "execution_a", "execution_b")
    PAIR_FIELD_NUMBER: _ClassVar[int]
    JUDGMENTS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_A_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_B_FIELD_NUMBER: _ClassVar[int]
    pair: ResponsePair
    judgments: _containers.RepeatedCompositeFieldContainer[Judgment]
    execution_a: ExecutionResult
    execution_b: ExecutionResult
    def __init__(self, pair: _Optional[_Union[ResponsePair, _Mapping]] = ..., judgments: _Optional[_Iterable[_Union[Judgment, _Mapping]]] = ..., execution_a: _Optional[_Union[ExecutionResult, _Mapping]] = ..., execution_b: _Optional[_Union[ExecutionResult, _Mapping]] = ...) -> None: ...

class RatedBattle(_message.Message):
    __slots__ = ("battle_id", "challenge_id", "round_id", "model_a", "model_b", "votes", "votes_a", "votes_b", "ties", "invalid", "local_score_a", "status", "failure_reason", "tokens_a", "tokens_b", "execution_a", "execution_b", "execution_score_a", "judge_score_a", "judge_calls", "judge_tokens", "skipped_judges")
    BATTLE_ID_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_A_FIELD_NUMBER: _ClassVar[int]
    MODEL_B_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    VOTES_A_FIELD_NUMBER: _ClassVar[int]
    VOTES_B_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_SCORE_A_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    TOKENS_A_FIELD_NUMBER: _ClassVar[int]
    TOKENS_B_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_A_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_B_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_SCORE_A_FIELD_NUMBER: _ClassVar[int]
    JUDGE_SCORE_A_FIELD_NUMBER: _ClassVar[int]
    JUDGE_CALLS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_JUDGES_FIELD_NUMBER: _ClassVar[int]
    battle_id: str
    challenge_id: str
    round_id: str
    model_a: str
    model_b: str
    votes: _containers.RepeatedCompositeFieldContainer[Vote]
    votes_a: int
    votes_b: int
    ties: int
    invalid: int
    local_score_a: float
    status: BattleStatus
    failure_reason: str
    tokens_a: int
    tokens_b: int
    execution_a: ExecutionResult
    execution_b: ExecutionResult
    execution_score_a: float
    judge_score_a: float
    judge_calls: int
    judge_tokens: int
    skipped_judges: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, battle_id: _Optional[str] = ..., challenge_id: _Optional[str] = ..., round_id: _Optional[str] = ..., model_a: _Optional[str] = ..., model_b: _Optional[str] = ..., votes: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ..., votes_a: _Optional[int] = ..., votes_b: _Optional[int] = ..., ties: _Optional[int] = ..., invalid: _Optional[int] = ..., local_score_a: _Optional[float] = ..., status: _Optional[_Union[BattleStatus, str]] = ..., failure_reason: _Optional[str] = ..., tokens_a: _Optional[int] = ..., tokens_b: _Optional[int] = ..., execution_a: _Optional[_Union[ExecutionResult, _Mapping]] = ..., execution_b: _Optional[_Union[ExecutionResult, _Mapping]] = ..., execution_score_a: _Optional[float] = ..., judge_score_a: _Optional[float] = ..., judge_calls: _Optional[int] = ..., judge_tokens: _Optional[int] = ..., skipped_judges: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelRating(_message.Message):
    __slots__ = ("model_id", "elo", "bradley_terry", "bradley_terry_lower", "bradley_terry_upper", "battles", "wins", "losses", "ties", "win_rate", "group", "lower_unbounded", "upper_unbounded", "anchor")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ELO_FIELD_NUMBER: _ClassVar[int]
    BRADLEY_TERRY_FIELD_NUMBER: _ClassVar[int]
    BRADLEY_TERRY_LOWER_FIELD_NUMBER: _ClassVar[int]
    BRADLEY_TERRY_UPPER_FIELD_NUMBER: _ClassVar[int]
    BATTLES_FIELD_NUMBER: _ClassVar[int]
    WINS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    LOWER_UNBOUNDED_FIELD_NUMBER: _ClassVar[int]
    UPPER_UNBOUNDED_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    elo: float
    bradley_terry: float
    bradley_terry_lower: float
    bradley_terry_upper: float
    battles: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    group: int
    lower_unbounded: bool
    upper_unbounded: bool
    anchor: bool
    def __init__(self, model_id: _Optional[str] = ..., elo: _Optional[float] = ..., bradley_terry: _Optional[float] = ..., bradley_terry_lower: _Optional[float] = ..., bradley_terry_upper: _Optional[float] = ..., battles: _Optional[int] = ..., wins: _Optional[int] = ..., losses: _Optional[int] = ..., ties: _Optional[int] = ..., win_rate: _Optional[float] = ..., group: _Optional[int] = ..., lower_unbounded: _Optional[bool] = ..., upper_unbounded: _Optional[bool] = ..., anchor: _Optional[bool] = ...) -> None: ...

class JudgeStats(_message.Message):
    __slots__ = ("judge", "pairs", "consistency", "tie_rate", "invalid_rate", "longer_pick_rate", "first_position_rate")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    TIE_RATE_FIELD_NUMBER: _ClassVar[int]
    INVALID_RATE_FIELD_NUMBER: _ClassVar[int]
    LONGER_PICK_RATE_FIELD_NUMBER: _ClassVar[int]
    FIRST_POSITION_RATE_FIELD_NUMBER: _ClassVar[int]
    judge: str
    pairs: int
    consistency: float
    tie_rate: float
    invalid_rate: float
    longer_pick_rate: float
    first_position_rate: float
    def __init__(self, judge: _Optional[str] = ..., pairs: _Optional[int] = ..., consistency: _Optional[float] = ..., tie_rate: _Optional[float] = ..., invalid_rate: _Optional[float] = ..., longer_pick_rate: _Optional[float] = ..., first_position_rate: _Optional[float] = ...) -> None: ...

class Leaderboard(_message.Message):
    __slots__ = ("round_id", "ratings", "judges", "battles", "failed_battles", "bootstrap_rounds", "judge_calls", "judge_tokens", "judge_tokens_per_record", "records", "interval_method", "battles_digest", "arena", "season", "rounds")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    BATTLES_FIELD_NUMBER: _ClassVar[int]
    FAILED_BATTLES_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_CALLS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_TOKENS_PER_RECORD_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_METHOD_FIELD_NUMBER: _ClassVar[int]
    BATTLES_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ARENA_FIELD_NUMBER: _ClassVar[int]
    SEASON_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    ratings: _containers.RepeatedCompositeFieldContainer[ModelRating]
    judges: _containers.RepeatedCompositeFieldContainer[JudgeStats]
    battles: int
    failed_battles: int
    bootstrap_rounds: int
    judge_calls: int
    judge_tokens: int
    judge_tokens_per_record: float
    records: int
    interval_method: str
    battles_digest: str
    arena: str
    season: bool
    rounds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, round_id: _Optional[str] = ..., ratings: _Optional[_Iterable[_Union[ModelRating, _Mapping]]] = ..., judges: _Optional[_Iterable[_Union[JudgeStats, _Mapping]]] = ..., battles: _Optional[int] = ..., failed_battles: _Optional[int] = ..., bootstrap_rounds: _Optional[int] = ..., judge_calls: _Optional[int] = ..., judge_tokens: _Optional[int] = ..., judge_tokens_per_record: _Optional[float] = ..., records: _Optional[int] = ..., interval_method: _Optional[str] = ..., battles_digest: _Optional[str] = ..., arena: _Optional[str] = ..., season: _Optional[bool] = ..., rounds: _Optional[_Iterable[str]] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("round_id", "challenge_id", "battle_ids", "models", "judges", "votes", "scores", "config_hash", "local_scores", "head_to_head_losers")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_ID_FIELD_NUMBER: _ClassVar[int]
    BATTLE_IDS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    LOCAL_SCORES_FIELD_NUMBER: _ClassVar[int]
    HEAD_TO_HEAD_LOSERS_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    challenge_id: str
    battle_ids: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedScalarFieldContainer[str]
    judges: _containers.RepeatedScalarFieldContainer[str]
    votes: _containers.RepeatedCompositeFieldContainer[Vote]
    scores: _containers.ScalarMap[str, float]
    config_hash: str
    local_scores: _containers.RepeatedCompositeFieldContainer[LocalScore]
    head_to_head_losers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, round_id: _Optional[str] = ..., challenge_id: _Optional[str] = ..., battle_ids: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[str]] = ..., judges: _Optional[_Iterable[str]] = ..., votes: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ..., scores: _Optional[_Mapping[str, float]] = ..., config_hash: _Optional[str] = ..., local_scores: _Optional[_Iterable[_Union[LocalScore, _Mapping]]] = ..., head_to_head_losers: _Optional[_Iterable[str]] = ...) -> None: ...

class LocalScore(_message.Message):
    __slots__ = ("battle_id", "model_a", "model_b", "x_a")
    BATTLE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_A_FIELD_NUMBER: _ClassVar[int]
    MODEL_B_FIELD_NUMBER: _ClassVar[int]
    X_A_FIELD_NUMBER: _ClassVar[int]
    battle_id: str
    model_a: str
    model_b: str
    x_a: float
    def __init__(self, battle_id: _Optional[str] = ..., model_a: _Optional[str] = ..., model_b: _Optional[str] = ..., x_a: _Optional[float] = ...) -> None: ...

class ChatTurn(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class TrainingRecord(_message.Message):
    __slots__ = ("record_id", "kind", "prompt", "chosen", "rejected", "chosen_model", "rejected_model", "provenance", "prompt_messages", "score", "margin")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_MODEL_FIELD_NUMBER: _ClassVar[int]
    REJECTED_MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    kind: str
    prompt: str
    chosen: str
    rejected: str
    chosen_model: str
    rejected_model: str
    provenance: Provenance
    prompt_messages: _containers.RepeatedCompositeFieldContainer[ChatTurn]
    score: float
    margin: float
    def __init__(self, record_id: _Optional[str] = ..., kind: _Optional[str] = ..., prompt: _Optional[str] = ..., chosen: _Optional[str] = ..., rejected: _Optional[str] = ..., chosen_model: _Optional[str] = ..., rejected_model: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., prompt_messages: _Optional[_Iterable[_Union[ChatTurn, _Mapping]]] = ..., score: _Optional[float] = ..., margin: _Optional[float] = ...) -> None: ...
