"""The open dashboard tells of a run that fails while it watches (a notice; the terminal's desktop
notification is written through the driver, see test_notify_term.py for its bytes), not of what had
failed before it opened, and says at start what is wrong with notify.json."""

import pytest

from notify_helpers import write_hooks
from runs_helpers import launch_fake, wait_for, view
from tui_helpers import app_for, cleanup, wait_until

pytestmark = pytest.mark.timeout(300)


async def test_a_run_failing_while_the_dashboard_is_open_is_told_once(workspace):
    write_hooks(workspace, [{"on": ["failed"], "command": ["no-such-notifier-xyz"]}])
    old = launch_fake(workspace, "--seconds", 0.1, "--exit", 3, name="failed before")
    wait_for(lambda: view(workspace, old).status == "failed")
    app = app_for(workspace)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: any("no-such-notifier-xyz" in n.message for n in app._notifications))
            await wait_until(pilot, lambda: app.find_view(old))
            new = launch_fake(workspace, "--seconds", 2, "--exit", 3, name="fails while watched")
            told = "run 'fails while watched (demo pca+texture concat gmm)' failed: exit code 3"
            await wait_until(pilot, lambda: any(told in n.message for n in app._notifications), timeout=60)
            await pilot.pause(1.0)
            messages = [n.message for n in app._notifications]
            assert sum(told in m for m in messages) == 1 and not any("failed before" in m for m in messages)
            assert app.find_view(new).status == "failed"
    finally:
        cleanup(workspace)
