"""Selection quality on a simulated arena: is the exported answer the best one?

Every answer has a latent quality: its expert's skill plus per-challenge noise, so a weaker
expert often writes the best answer to a challenge. Simulated judges compare two answers with a
sharpness (how reliably the better answer wins), a position bias (the share of verdicts that
pick whatever is shown first), a length bias, a preference for answers of their own model family
and a tie rate. Each (challenge, pair, judge, order) draws its own random numbers once, so every
method below meets exactly the same judges on the battles it shares with another method.

The battles go through the project's own code: the tournament schedule and the judges to ask
(`warriorcoder.arena.tournament`, as the judge stage uses them), `rate_battle` (the rater's
votes and local score), `bradley_terry` / `elo_ratings` (the leaderboard) and `select_winners`
(the exporter). Reported per method:

- best: share of challenges whose SFT answer is the truly best answer;
- dpo: share of preference pairs whose chosen answer is truly better than the rejected one;
- tau: Kendall tau of the global rating the method uses against the true skills;
- calls/rec: judge model calls per exported SFT record;
- overruled: SFT answers that lost a unanimous head-to-head to another answer.

Baselines in the same run: `today` (the selection before tournaments: attacker vs defenders,
alpha 0.7, Elo, mean over opponents), `paper preset` (selection.preset: paper), and
`paper released` (each pair judged once per judge, order alternating by battle parity,
sequential Elo, sum over opponents), and one-order judging with the default selection.

    .venv/bin/python bench/bench_selection.py                 # 2,000 challenges, all scenarios
    .venv/bin/python bench/bench_selection.py --challenges 300 --scenarios realistic
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warriorcoder.arena.ids import battle_id, judgment_id
from warriorcoder.arena.judging import rate_battle, unswap
from warriorcoder.arena.rating import bradley_terry, elo_ratings
from warriorcoder.arena.selection import select_winners
from warriorcoder.arena.tournament import (
    TournamentMode,
    next_battles,
    opening_battles,
    plan_judges,
)
from warriorcoder.v1 import arena_pb2

EXPERTS = ("e0", "e1", "e2", "e3", "e4")
SKILLS = np.array([0.6, 0.3, 0.0, -0.3, -0.6])
# Model families: a judge prefers answers of its own family by `family_preference`.
FAMILY = {"e0": 0, "e1": 0, "e2": 1, "e3": 1, "e4": 2}
ANSWER_NOISE = 0.6


@dataclass(frozen=True)
class Judges:
    name: str
    sharpness: float  # inf: always picks the better answer
    position_bias: float  # share of verdicts that pick the answer shown first, whatever it is
    length_bias: float  # quality points per standard deviation of length
    family_preference: float
    tie_rate: float


SCENARIOS = {
    "perfect": Judges("perfect", math.inf, 0.0, 0.0, 0.0, 0.0),
    "realistic": Judges("realistic (position 0.3, medium)", 2.0, 0.3, 0.1, 0.1, 0.05),
    "weak": Judges("weak (position 0.6, weak)", 1.0, 0.6, 0.1, 0.1, 0.05),
}


@dataclass(frozen=True)
class Method:
    name: str
    tournament: TournamentMode
    alpha: float
    rating: str = "bradley_terry"  # or "elo"
    aggregate: str = "mean"
    guard: bool = True
    adaptive: bool = False
    one_order: bool = False  # each judge judges each battle once, in one order
    sequential_elo_in_battle_order: bool = False


@dataclass
class Arena:
    """Latent qualities, lengths and the judges' random draws of every challenge."""

    quality: np.ndarray  # [challenge, expert]
    length: np.ndarray  # [challenge, expert], standardised
    draws: np.ndarray  # [challenge, a, b, judge, order, 3]

    @classmethod
    def make(cls, challenges: int, seed: int) -> Arena:
        rng = np.random.default_rng(seed)
        n = len(EXPERTS)
        quality = SKILLS[None, :] + rng.normal(0.0, ANSWER_NOISE, (challenges, n))
        length = rng.normal(0.0, 1.0, (challenges, n))
        draws = rng.random((challenges, n, n, n, 2, 3))
        return cls(quality, length, draws)


def position_verdict(
    arena: Arena, judges: Judges, c: int, first: int, second: int, judge: int, order: int
) -> int:
    """What a simulated judge writes when it is shown `first`'s answer, then `second`'s."""
    lo, hi = min(first, second), max(first, second)
    u_tie, u_position, u_compare = arena.draws[c, lo, hi, judge, order]
    if u_tie < judges.tie_rate:
        return arena_pb2.VERDICT_TIE
    if u_position < judges.position_bias:
        return arena_pb2.VERDICT_A
    gap = arena.quality[c, first] - arena.quality[c, second]
    gap += judges.length_bias * (arena.length[c, first] - arena.length[c, second])
    family = FAMILY[EXPERTS[judge]]
    gap += judges.family_preference * (
        (FAMILY[EXPERTS[first]] == family) - (FAMILY[EXPERTS[second]] == family)
    )
    if math.isinf(judges.sharpness):
        p_first = 1.0 if gap > 0 else 0.0
    else:
        p_first = 1.0 / (1.0 + math.exp(-judges.sharpness * gap))
    return arena_pb2.VERDICT_A if u_compare < p_first else arena_pb2.VERDICT_B


def _is_final(judgment: arena_pb2.Judgment | None) -> bool:
    return judgment is not None


def fight(
    arena: Arena, judges: Judges, method: Method, c: int, a: str, b: str, parity: int
) -> arena_pb2.RatedBattle:
    """One battle judged by every uninvolved expert (or adaptively), rated by `rate_battle`."""
    ia, ib = EXPERTS.index(a), EXPERTS.index(b)
    bid = battle_id(f"c{c}", a, b)
    eligible = [j for j in EXPERTS if j not in (a, b)]
    judgments: dict[str, arena_pb2.Judgment] = {}
    orders = (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA)
    calls = 0
    while True:
        asked, done = plan_judges(
            bid, eligible, judgments, adaptive=method.adaptive, is_final=_is_final
        )
        if done:
            break
        for judge in asked:
            if judgment_id(bid, judge, orders[0]) in judgments:
                continue
            ij = EXPERTS.index(judge)
            shown = [parity % 2] if method.one_order else [0, 1]
            verdicts = {}
            for o in shown:
                first, second = (ia, ib) if o == 0 else (ib, ia)
                pv = position_verdict(arena, judges, c, first, second, ij, o)
                verdicts[o] = (pv, unswap(pv, orders[o]))
                calls += 1
            for o in (0, 1):
                pv, bv = verdicts.get(o, next(iter(verdicts.values())))
                if o not in verdicts:  # one-order judging: the one verdict is the vote
                    pv = unswap(bv, orders[o])  # un-swapping is its own inverse
                jid = judgment_id(bid, judge, orders[o])
                judgments[jid] = arena_pb2.Judgment(
                    judgment_id=jid, battle_id=bid, judge=judge, order=orders[o],
                    position_verdict=pv, verdict=bv, attempts=1, spent_calls=1,
                )
    pair = arena_pb2.ResponsePair(
        battle_id=bid, challenge_id=f"c{c}", round_id="sim", model_a=a, model_b=b,
        judges=asked,
    )
    pair.response_a.generation.completion_tokens = int(100 + 30 * arena.length[c, ia])
    pair.response_b.generation.completion_tokens = int(100 + 30 * arena.length[c, ib])
    rated = rate_battle(pair, [j for j in judgments.values() if j.judge in asked])
    rated.judge_calls = calls
    return rated


def run_battles(
    arena: Arena, judges: Judges, method: Method, challenges: int
) -> list[arena_pb2.RatedBattle]:
    """Every battle of every challenge, through the tournament schedule."""
    battles: list[arena_pb2.RatedBattle] = []
    parity = 0
    for c in range(challenges):
        attacker = EXPERTS[c % len(EXPERTS)]
        defenders = [e for e in EXPERTS if e != attacker]
        results: dict[tuple[str, str], float | None] = {}
        stage = opening_battles(method.tournament, attacker, defenders)
        while stage:
            for a, b in stage:
                rated = fight(arena, judges, method, c, a, b, parity)
                parity += 1
                battles.append(rated)
                ok = rated.status == arena_pb2.BATTLE_STATUS_RATED
                results[(a, b)] = rated.local_score_a if ok else None
            stage = next_battles(method.tournament, attacker, defenders, results)
    return battles


@dataclass(frozen=True)
class Scores:
    best: float
    dpo: float
    tau: float
    calls_per_record: float
    overruled: int
    records: int


def evaluate(
    arena: Arena, method: Method, battles: Sequence[arena_pb2.RatedBattle]
) -> Scores:
    rated = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_RATED]
    outcomes = [(b.model_a, b.model_b, b.local_score_a) for b in rated]
    if method.rating == "elo":
        ordered = rated if method.sequential_elo_in_battle_order else sorted(
            rated, key=lambda b: b.battle_id)
        ratings = elo_ratings([(b.model_a, b.model_b, b.local_score_a) for b in ordered], 40.0)
    else:
        ratings = bradley_terry(outcomes)
    chosen = select_winners(
        rated, ratings, method.alpha, aggregate=method.aggregate,  # type: ignore[arg-type]
        head_to_head_guard=method.guard,
    )
    best = dpo_right = dpo_total = overruled = 0
    for o in chosen:
        c = int(o.challenge_id[1:])
        q = {e: arena.quality[c, i] for i, e in enumerate(EXPERTS)}
        answered = set(o.scores)
        best += o.winner == max(answered, key=q.__getitem__)
        if o.loser != o.winner and o.scores[o.winner] > o.scores[o.loser]:
            dpo_total += 1
            dpo_right += q[o.winner] > q[o.loser]
        overruled += o.winner in o.beaten_unanimously
    tau = kendalltau([ratings[e] for e in EXPERTS], SKILLS).statistic
    calls = sum(b.judge_calls for b in battles)
    return Scores(
        best / len(chosen), dpo_right / max(dpo_total, 1), float(tau),
        calls / len(chosen), overruled, len(chosen),
    )


def methods(alphas: Sequence[float]) -> list[Method]:
    out = [
        Method("today: none, alpha 0.7, Elo, mean", "none", 0.7, "elo", guard=False),
        Method("paper preset: none, alpha 0.7, Elo, sum", "none", 0.7, "elo", "sum", False),
        Method("paper released: one order, seq. Elo, sum", "none", 0.7, "elo", "sum", False,
               one_order=True, sequential_elo_in_battle_order=True),
    ]
    for mode in ("none", "contenders", "round_robin"):
        for alpha in alphas:
            out.append(Method(f"{mode}, alpha {alpha:g}", mode, alpha))  # type: ignore[arg-type]
        out.append(Method(f"{mode}, alpha {alphas[0]:g}, adaptive", mode, alphas[0],  # type: ignore[arg-type]
                          adaptive=True))
    out.append(Method(f"contenders, alpha {alphas[0]:g}, one order", "contenders", alphas[0],
                      one_order=True))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--challenges", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", nargs="+", choices=sorted(SCENARIOS),
                        default=["perfect", "realistic", "weak"])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.7])
    args = parser.parse_args(argv)
    arena = Arena.make(args.challenges, args.seed)
    top = int(np.argmax(SKILLS))
    weaker_best = float(np.mean(np.argmax(arena.quality, axis=1) != top))
    print(f"{args.challenges} challenges, 5 experts, 3 uninvolved judges per attacker battle; "
          f"best answer by a weaker expert on {weaker_best:.0%} of challenges")
    for scenario in args.scenarios:
        judges = SCENARIOS[scenario]
        print(f"\n### judges: {judges.name}\n")
        print("| method | best | dpo | tau | calls/rec | overruled |")
        print("|---|---|---|---|---|---|")
        cache: dict[tuple[object, ...], list[arena_pb2.RatedBattle]] = {}
        for method in methods(args.alphas):
            key = (method.tournament, method.adaptive, method.one_order)
            if key not in cache:
                cache[key] = run_battles(arena, judges, method, args.challenges)
            s = evaluate(arena, method, cache[key])
            print(f"| {method.name} | {s.best:.3f} | {s.dpo:.3f} | {s.tau:.2f} | "
                  f"{s.calls_per_record:.1f} | {s.overruled} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
