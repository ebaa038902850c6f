"""One run detail screen serves every run opened: turned to the next run, it shows that run's log, facts and
result alone, and a run gone back from is no longer read."""

from __future__ import annotations

from runs_helpers import launch_fake
from tui_helpers import app_for, cleanup, frozen_run, wait_until


def log_lines(app) -> list[str]:
    found = app.screen.query("#log")
    return list(found.first().lines) if found else []


def tailing(screen) -> bool:
    return any(w.group == "tail" and not w.is_finished for w in screen.workers)


async def test_the_next_run_opened_shows_its_own_log_and_result_and_the_last_one_is_not_read_on(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    done = frozen_run(root, ari=0.62)
    live = launch_fake(root, "--seconds", 60)
    app = app_for(root)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.find_view(live) and app.find_view(live).status == "running")
            app.open_run(live)
            await wait_until(pilot, lambda: any("step" in line for line in log_lines(app)), timeout=30)
            detail = app.screen
            assert tailing(detail)
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is not detail and not tailing(detail), timeout=10)
            app.open_run(done.name)
            await wait_until(pilot, lambda: any("ARI 0.620" in line for line in log_lines(app)), timeout=30)
            assert app.screen is detail and detail.run_id == done.name
            assert not any("step" in line for line in log_lines(app))  # nothing of the live run's log
            cells = await wait_until(pilot, lambda: detail.query_one("#cells").row_count and detail.query_one("#cells"))
            assert [str(c) for c in cells.get_row_at(0)][1] == "0.620"
            assert done.name in str(detail.query_one("#detail-title").render())
    finally:
        cleanup(root)
