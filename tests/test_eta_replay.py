"""The ETA on real recorded runs (tests/fixtures/events/, see its README): replayed as a watcher would have
seen them, with the history the other recordings of the same cells give. It holds the line of
benchmarks/bench_eta.py: median finish-time error at 50 % within 20 %, no `high` estimate 2x off."""

from eta_fixtures import median_abs, recordings, table


def test_recordings_cover_the_cases():
    recs = recordings()
    groups = {r.group for r in recs}
    assert {"staig_151673", "grid_demo_7"} <= groups
    assert sum(r.group == "staig_151673" for r in recs) >= 3  # quiet, busy, slowed midway: 2+ runs of history each
    assert any(len(r.fusions) == 7 for r in recs)


def test_median_error_at_half_time_is_within_20_percent():
    rows = table(with_history=True)
    at_half = [r["errors"][1] for r in rows]
    assert median_abs(at_half) <= 0.20, rows


def test_no_high_confidence_estimate_is_2x_off():
    for with_history in (True, False):
        for row in table(with_history):
            for error, confidence in zip(row["errors"], row["confidence"]):
                if confidence == "high":
                    assert 0.5 <= 1 + error <= 2.0, row  # predicted over true duration


def test_without_history_an_estimate_is_never_high():
    for row in table(with_history=False):
        assert "high" not in row["confidence"], row
