"""A dashboard in a background window still gets noticed: when a run turns late, overruns or fails while
it is open, a notice and the terminal's own desktop notification (mihd.runs.notify_term builds the bytes;
the app only writes them through Textual's driver). What was already so when the dashboard opened is not
news; each run and event is told once."""

from __future__ import annotations

import os

from mihd.runs.notify_event import summary
from mihd.runs.notify_term import notification

FAILED = ("failed", "lost")  # a kill from here or `mihd runs kill` is no news to the one who did it


def events_of(view) -> list[tuple[str, str | None]]:
    """(event, reason) a run view stands for now: late / overrun while active, failed once ended so."""
    if view.active:
        late = getattr(view, "late", None)
        return ([("overrun", None)] if view.overrun else []) + ([("late", late if isinstance(late, str) else None)]
                                                                if late and not view.overrun else [])
    code = f"exit code {view.exit_code}" if view.exit_code else None
    return [("failed", view.error or view.reason or code)] if view.status in FAILED else []


class Alerts:
    def __init__(self, env=None):
        self.env = os.environ if env is None else env
        self._told: set[tuple[str, str]] | None = None  # None until the first snapshot primed it

    def new(self, views) -> list[tuple[str, str, str]]:
        """(event, notice text, terminal bytes) for each run that newly turned late, overran or failed."""
        now = {(v.id, event): (v, reason) for v in views for event, reason in events_of(v)}
        if self._told is None:
            self._told = set(now)
            return []
        out = []
        for key in [k for k in now if k not in self._told]:
            self._told.add(key)
            view, reason = now[key]
            text = summary({"event": key[1], "label": view.label, "run_id": view.id, "reason": reason,
                            "elapsed_s": view.elapsed})
            out.append((key[1], text, notification("mihd", text, self.env)))
        return out


def config_notices(root) -> list[str]:
    """What is wrong with the notify config, mail servers asked (seconds: call it from a worker thread)."""
    from mihd.runs.notify import check

    return check(root)[1]
