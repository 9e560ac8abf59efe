"""Config validation: every malformed field is named before any model loads."""

from pathlib import Path

import pytest

from warriorcoder.config import ConfigError, load_config, parse_config

ROSTER = [
    {"id": "a", "backend": "fake", "model": "fake"},
    {"id": "b", "backend": "fake", "model": "fake"},
    {"id": "c", "backend": "fake", "model": "fake"},
]


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_examples_are_valid() -> None:
    # From the repository root whatever the working directory: a glob that finds nothing
    # would pass without checking anything.
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert len(examples) >= 2, f"no example configs found in {EXAMPLES}"
    for path in examples:
        assert len(load_config(path).roster) >= 3, path


def test_minimal_config_gets_paper_defaults() -> None:
    cfg = parse_config({"roster": ROSTER})
    assert cfg.challenger.dedup.threshold == 0.5
    assert cfg.challenger.dedup.num_perm == 128
    assert cfg.rating.k_factor == 40
    assert cfg.selection.tournament == "contenders"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"roster": ROSTER[:2]}, "at least 3 are needed"),
        ({"roster": [*ROSTER, {"id": "a", "backend": "fake", "model": "x"}]}, "duplicate"),
        ({"roster": [*ROSTER, {"id": "d", "backend": "openai", "model": "m"}]},
         "roster.3: endpoint: required"),
        ({"roster": [*ROSTER, {"id": "d", "backend": "openai", "model": "m", "endpoint": "ftp://x"}]},
         "must start with http"),
        ({"roster": [*ROSTER, {"id": "d", "backend": "gpt", "model": "m"}]}, "roster.3.backend"),
        ({"roster": [*ROSTER, {"id": "bad id!", "backend": "fake", "model": "m"}]}, "roster.3.id"),
        ({"challenger": {"dedup": {"threshold": 1.5}}}, "challenger.dedup.threshold"),
        ({"challenger": {"defenders": 5}}, "challenger.defenders"),
        ({"challenger": {"quality": {"enabled": True, "judge": "zzz"}}},
         "challenger.quality.judge"),
        ({"challenger": {"sampling_grid": []}}, "challenger.sampling_grid"),
        ({"selection": {"alpha": 2}}, "selection.alpha"),
        ({"rating": {"k_factor": -1}}, "rating.k_factor"),
        ({"judge": {"unknown_field": 1}}, "judge.unknown_field"),
        ({"roster": [*ROSTER, {"id": "d", "backend": "fake", "model": "m",
                               "chat_template": {"builtin": "chatml", "template": "x"}}]},
         "exactly one of"),
    ],
)
def test_bad_fields_are_named(patch: dict, field: str) -> None:
    data = {"roster": ROSTER, **patch}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace("!", "")):
        parse_config(data)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("roster: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(scalar)


def test_config_hash_is_stable_and_sensitive() -> None:
    a = parse_config({"roster": ROSTER})
    b = parse_config({"roster": ROSTER})
    c = parse_config({"roster": ROSTER, "seed": 1})
    assert a.config_hash() == b.config_hash() != c.config_hash()


def test_answer_sampling_override() -> None:
    roster = [dict(ROSTER[0], sampling={"temperature": 1.0}), *ROSTER[1:]]
    cfg = parse_config({"roster": roster})
    assert cfg.answer_sampling("a").temperature == 1.0
    assert cfg.answer_sampling("b") == cfg.responder.sampling


def test_openai_expert_in_an_arena_needs_a_chat_template() -> None:
    roster = [{"id": f"m{i}", "backend": "openai", "model": "x",
               "endpoint": "http://127.0.0.1:8000/v1", "chat_template": {"builtin": "chatml"}}
              for i in range(3)]
    del roster[1]["chat_template"]
    with pytest.raises(ConfigError, match=r"roster\.1\.chat_template: required for backend"):
        parse_config({"roster": roster})


def test_every_problem_is_reported_in_one_pass() -> None:
    # A field error used to hide the roster rules, which ran only once every field was valid.
    data = {
        "roster": [
            {"id": "a", "backend": "fake", "model": "fake"},
            {"id": "a", "backend": "openai", "model": "m"},
        ],
        "challenger": {"dedup": {"threshold": 2}, "quality": {"enabled": True, "judge": "zz"},
                       "defenders": 5},
        "judge": {"soft_votes": True, "structured_output": "json_schema", "labels": "arena_hard"},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(data, "bad.yaml")
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid arena config bad.yaml:"
    problems = [line.strip() for line in lines[1:]]
    expected = [
        "roster.1: endpoint: required for backend 'openai'",
        "challenger.dedup.threshold: Input should be less than or equal to 1",
        "judge: soft_votes needs the verdict to be the judge's first token",
        "judge: soft_votes needs labels 'abc'",
        "roster: duplicate expert id(s) ['a']",
        "roster: has 2 expert(s); at least 3 are needed",
        "roster.1.chat_template: required for backend 'openai'",
        "challenger.quality.judge: 'zz' is not an expert id of the roster",
        "challenger.defenders: must be 'all' or 1..1, got 5",
    ]
    for want in expected:
        assert sum(p.startswith(want) for p in problems) == 1, (want, problems)
    assert len(problems) == len(expected), problems


def test_rules_across_blocks_are_all_reported_on_valid_fields() -> None:
    roster = [{"id": "a", "backend": "fake", "model": "fake"},
              {"id": "b", "backend": "fake", "model": "fake"}]
    with pytest.raises(ConfigError) as err:
        parse_config({"roster": roster, "challenger": {"defenders": 3},
                      "selection": {"preset": "paper"}, "rating": {"k_factor": 16}})
    problems = [line.strip() for line in str(err.value).splitlines()[1:]]
    assert [p.split(":")[0] for p in problems] == [
        "roster", "challenger.defenders", "rating.k_factor"], problems
    assert not any(p.startswith("(top level)") for p in problems)
