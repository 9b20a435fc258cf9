"""The multi-fidelity promotion rule on a toy table whose right decisions are worked out by
hand (pure: no Ray, no training)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from minsearch.objectives.constraint import Constraint
from minsearch.search.promotion import (
    HalvingConfig,
    HalvingState,
    Job,
    Rung,
    Work,
    decide,
    final_front,
    promotion_order,
    rung_epochs,
)

CONSTRAINT = Constraint("accuracy", "max", 0.02)
CONFIG = HalvingConfig(rungs=(Rung(1, 1, slack=0.05), Rung(4, 1), Rung(4, 2)),
                       directions=("max", "min"), constraint=CONSTRAINT, reduction=2,
                       seeds=(0, 1))

# genome -> (bytes, {seed: {epoch: accuracy}}): bytes are cost-only, the same at every epoch.
TABLE = {
    "base": (100, {0: {1: 0.80, 4: 0.90}, 1: {1: 0.82, 4: 0.88}}),
    "g1": (50, {0: {1: 0.70, 4: 0.95}, 1: {1: 0.70, 4: 0.95}}),  # 0.10 worse at epoch 1
    "g2": (60, {0: {1: 0.79, 4: 0.89}, 1: {1: 0.80, 4: 0.85}}),
    "g3": (70, {0: {1: 0.80, 4: 0.91}, 1: {1: 0.81, 4: 0.89}}),
    "g4": (90, {0: {1: 0.60, 4: 0.60}, 1: {1: 0.60, 4: 0.60}}),
    "g5": (40, {0: {1: 0.40, 4: 0.40}, 1: {1: 0.40, 4: 0.40}}),
}
PROPOSALS = ["g1", "g2", "g3", "g4", "g5"]


def run_job(state: HalvingState, job: Job) -> None:
    """Train ``job`` on the toy table: record every rung epoch of each work item."""
    state.issue(job)
    size, curves = TABLE[job.genome]
    for w in job.work:
        for epoch in rung_epochs(CONFIG, w.start, w.stop):
            state.record(job.genome, w.seed, epoch, (curves[w.seed][epoch], size))


def drive(state: HalvingState, steps: int, *, roundtrip: bool = False) -> list[Job]:
    """``steps`` decisions, each run at once; new genomes come from PROPOSALS in order.
    ``roundtrip`` pickles and restores the state before every decision (a resumed driver)."""
    jobs, proposals = [], iter(PROPOSALS)
    for _ in range(steps):
        if roundtrip:
            state = pickle.loads(pickle.dumps(state))
        job = decide(CONFIG, state)
        if job is None:
            break
        if job.genome is None:
            name = next(proposals, None)
            if name is None:
                break
            job = job.named(name)
        run_job(state, job)
        jobs.append(job)
    return jobs


def test_order_is_rank_then_hypervolume_contribution():
    # (accuracy, bytes), reference (0, 2). Exclusive volumes worked out by hand:
    # A (1.0, 1.0): 0.05 x 1.0 = 0.05;  B (0.9, 0.5): 0.9 x 0.4 = 0.36;
    # C (0.95, 0.9): 0.05 x 0.1 = 0.005;  D (0.7, 0.95) is dominated by C: rank 1.
    values = np.array([[1.0, 1.0], [0.9, 0.5], [0.95, 0.9], [0.7, 0.95]])
    from minsearch.pareto import hypervolume_contributions

    contributions = hypervolume_contributions(values[:3], ["max", "min"], [0, 2])
    np.testing.assert_allclose(contributions, [0.05, 0.36, 0.005], atol=1e-12)
    assert promotion_order(values, ["max", "min"], [0, 2]) == [1, 0, 2, 3]


def test_promotions_on_the_toy_table():
    state = HalvingState("base")
    jobs = drive(state, 7)
    described = [(j.genome, j.rung, j.work) for j in jobs]
    assert described == [
        ("base", 2, (Work(0, 0, 4), Work(1, 0, 4))),  # the baseline through every rung first
        ("g1", 0, (Work(0, 0, 1),)),  # 1 at rung 0: floor(1 / 2) = 0 may go up
        ("g2", 0, (Work(0, 0, 1),)),
        # 2 at rung 0, 1 may go up; g1 is 0.10 worse than the baseline (limit 0.02 + slack
        # 0.05): infeasible, never promoted although it is the smallest. g2 continues its seed.
        ("g2", 1, (Work(0, 1, 4),)),
        ("g3", 0, (Work(0, 0, 1),)),  # 3 at rung 0: 1 may go up, g2 (ranked first) already did
        ("g4", 0, (Work(0, 0, 1),)),
        # 4 at rung 0: 2 may go up: g2 then g3 (g2's hypervolume contribution 0.099 beats
        # g3's 0.016; g4 is infeasible)
        ("g3", 1, (Work(0, 1, 4),)),
    ]
    # 2 at rung 1, 1 may go up: g3 (0.91/0.90, 0.7) vs g2 (0.89/0.90, 0.6) -> g2's
    # contribution is larger; only seed 1 is new (seed 0 already has its 4 epochs).
    assert decide(CONFIG, state) == Job("g2", 2, (Work(1, 0, 4),))
    assert state.epochs_spent() == 8 + 4 * 1 + 3 + 3


def test_front_holds_only_top_rung_candidates_with_their_means():
    state = HalvingState("base")
    drive(state, 8)
    # g2 at the top: accuracy mean 0.87 vs the baseline's 0.89 (a paired drop of 0.02, within
    # the limit). g1 (smaller, and 0.95 accurate at 4 epochs) never got there: not on it.
    assert final_front(CONFIG, state) == ["base", "g2"]
    assert "g1" not in final_front(CONFIG, state)


def test_resume_mid_promotion_decides_the_same_and_trains_nothing_twice():
    straight = drive(HalvingState("base"), 8)
    resumed = drive(HalvingState("base"), 8, roundtrip=True)
    assert resumed == straight

    # Kill between issuing a promotion and recording it: the restored state holds it pending.
    state = HalvingState("base")
    drive(state, 3)
    promotion = decide(CONFIG, state)
    assert promotion == Job("g2", 1, (Work(0, 1, 4),))
    state.issue(promotion)
    restored = pickle.loads(pickle.dumps(state))
    assert decide(CONFIG, restored).genome is None  # not issued again: a new genome instead
    with pytest.raises(ValueError, match="epochs trained or issued"):
        restored.issue(promotion)  # the same (genome, seed, epochs) twice is refused
    restored.record("g2", 0, 4, (0.89, 60))
    assert restored.pending == {}
    with pytest.raises(ValueError, match="recorded already"):
        restored.record("g2", 0, 4, (0.89, 60))

    # Over a whole run, each (genome, seed) is trained over disjoint, contiguous epochs.
    spans: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for job in straight:
        for w in job.work:
            spans.setdefault((job.genome, w.seed), []).append((w.start, w.stop))
    for parts in spans.values():
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
        assert parts[0][0] == 0


def test_an_abandoned_job_is_issued_again_from_its_last_recorded_epoch():
    state = HalvingState("base")
    baseline = decide(CONFIG, state)
    state.issue(baseline)
    state.record("base", 0, 1, (0.80, 100))  # seed 0 reached rung 0, then the trial was lost
    state.abandon(baseline, CONFIG)
    assert decide(CONFIG, state) == Job("base", 2, (Work(0, 1, 4), Work(1, 0, 4)))
    assert state.epochs_spent() == 1


def test_an_exhausted_space_promotes_below_the_cut():
    state = HalvingState("base")
    drive(state, 7)  # g1-g4 started; g2 and g3 went up from rung 0
    # As if no new genome could be had: rung 1 holds g2 and g3, its cut (1) lets g2 go up;
    # then g3 goes up too (below the cut), and nothing is left (g1 and g4 are infeasible).
    assert decide(CONFIG, state, exhausted=True) == Job("g2", 2, (Work(1, 0, 4),))
    run_job(state, decide(CONFIG, state, exhausted=True))
    assert decide(CONFIG, state, exhausted=True) == Job("g3", 2, (Work(1, 0, 4),))
    run_job(state, decide(CONFIG, state, exhausted=True))
    assert decide(CONFIG, state, exhausted=True) is None


def test_a_failed_genome_is_never_promoted():
    state = HalvingState("base")
    drive(state, 3)  # base, g1, g2 at rung 0
    state.record_failure("g2")
    assert decide(CONFIG, state).genome is None  # g2 would have been promoted
    assert "g2" not in final_front(CONFIG, state)


def test_config_is_checked():
    with pytest.raises(ValueError, match="more budget"):
        HalvingConfig((Rung(4, 1), Rung(1, 1)), ("max",), CONSTRAINT)
    with pytest.raises(ValueError, match="only 1 are given"):
        HalvingConfig((Rung(1, 1), Rung(4, 2)), ("max",), CONSTRAINT, seeds=(0,))
    with pytest.raises(ValueError, match="reduction"):
        HalvingConfig((Rung(1, 1),), ("max",), CONSTRAINT, reduction=1)
