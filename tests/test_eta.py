"""The ETA's rules on small event streams: failed cells are no work, no basis means no number, a long
stage's measured rate takes over from the history, confidence says what the estimate rests on, and a
thin history never makes a tight overrun."""

from dataclasses import replace

import pytest

from mihd.runs.eta import CellPlan, Expected, ProgressTracker
from mihd.runs.overrun import is_overrun, overrun_limit
from mihd.runs.stages import default_shares

STAIG = default_shares("staig_fusion")


def cell(t, index, of, fusion="staig_fusion"):
    return {"t": t, "kind": "cell", "index": index, "of": of, "cell": {"fusion": fusion}}


def stage(t, name, done, total):
    return {"t": t, "kind": "stage", "stage": name, "done": done, "total": total}


def training(t0, seconds_per_10, upto, total=300):
    """A staig cell's events from load to `train upto/total`, 10 epochs every `seconds_per_10` s."""
    evs = [stage(t0, "load", 0, 1), stage(t0 + 1, "load", 1, 1), stage(t0 + 1, "fuse", 0, 1)]
    return evs + [stage(t0 + 1 + seconds_per_10 * k, "train", 10 * k, total) for k in range(1, upto // 10 + 1)]


def test_a_failed_cell_counts_as_no_work():
    """Seven cells failed at once and the only real one is a third through: 33 %, not 87 %."""
    plans = [CellPlan(10.0, 3, {"fuse": 1.0}) for _ in range(8)]
    events = []
    for i in range(7):
        events += [cell(i * 0.1, i, 8), {"t": i * 0.1 + 0.05, "kind": "metric", "index": i, "error": "boom"}]
    events += [cell(1.0, 7, 8), stage(2.0, "fuse", 1, 3)]
    tracker = ProgressTracker(8, plans, Expected(None), started=0.0)
    p = tracker.feed(events)
    assert p.fraction == pytest.approx(1 / 3)
    assert tracker.estimate(2.0).eta_s <= 10 * 2 / 3  # the failed cells add no time


def test_nothing_to_go_on_is_unknown_not_a_number():
    tracker = ProgressTracker(1, [CellPlan(shares=STAIG)], Expected(None), started=0.0)
    p = tracker.feed([{"t": 0.0, "kind": "start", "cells": 1}, cell(2.0, 0, 1), stage(2.0, "load", 0, 1)])
    assert (p.eta_s, p.confidence) == (None, "unknown")
    # a grid with no history: unknown until a finished cell gives a scale for the rest
    grid = ProgressTracker(3, None, Expected(None), started=0.0)
    p = grid.feed([cell(0.0, 0, 3, "concat"), stage(0.5, "cluster", 0, 1)])
    assert (p.eta_s, p.confidence) == (None, "unknown")
    p = grid.feed([stage(2.0, "cluster", 1, 1), {"t": 2.0, "kind": "metric", "index": 0, "ari": 0.4},
                   cell(2.0, 1, 3, "concat")])
    assert p.eta_s == pytest.approx(4.0, rel=0.05) and p.confidence == "low"  # two more cells like the first


def test_a_long_stage_is_timed_by_its_measured_rate():
    """No history: 10 epochs every 5 s, at 100/300 about 100 s of training are left."""
    tracker = ProgressTracker(1, [CellPlan(shares=STAIG)], Expected(None), started=0.0)
    p = tracker.feed([cell(0.0, 0, 1)] + training(0.0, 5.0, 100))
    left = tracker.estimate(51.0).eta_s
    assert 100 <= left <= 110 and p.confidence == "medium"  # measured, but nothing to confirm it


def test_measured_rate_takes_over_from_the_history_as_steps_accumulate():
    """History says 150 s (5 runs); this run trains at a third of that speed."""
    expected = Expected(150.0, "history", 5, "high")
    steps = {}
    for upto in (10, 20, 60):
        tracker = ProgressTracker(1, [CellPlan(shares=STAIG)], expected, started=0.0)
        tracker.feed([cell(0.0, 0, 1)] + training(0.0, 15.0, upto))
        now = 1 + 1.5 * upto
        steps[upto] = tracker.estimate(now)
    truth_left = 1.5 * (300 - 60)  # at the slow rate
    assert steps[60].eta_s == pytest.approx(truth_left, rel=0.1)
    assert steps[10].eta_s < steps[20].eta_s < steps[60].eta_s  # moving from the history to the rate
    assert steps[60].confidence != "high"  # rate and history disagree


def test_high_only_when_history_and_measured_rate_agree():
    expected = Expected(150.0, "history", 5, "high")
    tracker = ProgressTracker(1, [CellPlan(shares=STAIG)], expected, started=0.0)
    tracker.feed([cell(0.0, 0, 1)] + training(0.0, 4.7, 100))
    p = tracker.estimate(48.0)
    assert p.confidence == "high" and p.eta_s == pytest.approx(4.7 * 20 + 0.06 * 150, rel=0.15)
    few = ProgressTracker(1, [CellPlan(shares=STAIG)], Expected(150.0, "history", 1, "low"), started=0.0)
    few.feed([cell(0.0, 0, 1)] + training(0.0, 4.7, 100))
    assert few.estimate(48.0).confidence == "medium"  # one earlier run agrees, but it is one run


def test_a_widely_spread_history_never_makes_a_high_estimate():
    """Four earlier runs took 33 s, 47 s, 12 min and 32 min (a shared machine): their median agreeing
    with this run's rate is luck, not evidence."""
    from mihd.runs.eta import expected_duration

    spread = expected_duration("sig", {"sig": [33.0, 47.0, 734.0, 1938.0]})
    assert spread.n == 4 and not spread.tentative and not spread.solid
    steady = expected_duration("sig", {"sig": [140.0, 150.0, 155.0, 160.0]})
    for expected, confidence in ((steady, "high"), (spread, "medium")):
        tracker = ProgressTracker(1, [CellPlan(shares=STAIG)], replace(expected, seconds=150.0), started=0.0)
        tracker.feed([cell(0.0, 0, 1)] + training(0.0, 4.7, 100))
        assert tracker.estimate(48.0).confidence == confidence


def test_a_stage_past_its_expected_end_is_low_and_its_eta_grows():
    expected = Expected(20.0, "history", 5, "high")
    plans = [CellPlan(shares={"load": 0.1, "fuse": 0.1, "cluster": 0.8})]
    tracker = ProgressTracker(1, plans, expected, started=0.0)
    tracker.feed([cell(0.0, 0, 1), stage(1.0, "load", 1, 1), stage(2.0, "fuse", 1, 1), stage(2.0, "cluster", 0, 1)])
    assert tracker.estimate(10.0).eta_s == pytest.approx(16 - 8, abs=0.5)
    late, later = tracker.estimate(60.0), tracker.estimate(120.0)
    assert late.confidence == "low" and 0 < late.eta_s < later.eta_s


def test_one_earlier_run_does_not_make_a_tight_overrun():
    one = Expected(14.0, "history", 1, "low")  # a single earlier 14 s run
    assert not is_overrun(21, one) and not is_overrun(42, one) and is_overrun(43, one)
    limit, factor, why = overrun_limit(one)
    assert (limit, factor) == (42.0, 3.0) and "only 1 earlier run" in why
    three = Expected(14.0, "history", 3, "medium")
    assert not is_overrun(23, three) and is_overrun(25, three)  # 1.5x, but never within 10 s of expected
    long = Expected(100.0, "history", 4, "medium")
    assert not is_overrun(150, long) and is_overrun(151, long)
    given = Expected(14.0, "given", 0, "medium")
    assert not is_overrun(14, given) and is_overrun(14.5, given)  # --expect is authoritative


def test_a_cell_with_no_history_is_unknown_until_its_own_rate_is_measured():
    """A grid of a timed concat then an untimed staig: while concat runs, staig's time would be a guess from
    concat's history (default costs), which ran 30-110 s high; the ETA says `unknown`. A lone staig run says
    `unknown` until it has measured MEASURED_AFTER training steps, then gives a number from that rate."""
    plans = [CellPlan(4.0, 3, {"cluster": 1.0}), CellPlan(shares=STAIG)]
    grid = ProgressTracker(2, plans, Expected(None), started=0.0)
    early = grid.feed([cell(0.0, 0, 2, "concat"), stage(1.0, "cluster", 0, 1)])
    assert (early.eta_s, early.confidence) == (None, "unknown")
    alone = ProgressTracker(1, [CellPlan(shares=STAIG)], Expected(None), started=0.0)
    events = [cell(0.0, 0, 1)] + training(0.0, 5.0, 30)
    p = alone.feed(events[:-2])
    assert (p.eta_s, p.confidence) == (None, "unknown")  # one step: not yet a rate
    p = alone.feed(events[-2:])
    assert p.eta_s is not None and p.confidence == "medium"  # measured, with no history to agree with
    assert alone.estimate(16.0).eta_s == pytest.approx(135.0, rel=0.25)  # 270 epochs at 0.5 s each
