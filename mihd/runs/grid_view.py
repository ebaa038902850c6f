"""A fanned-out grid as listings show it: a CellView per cell and the grid's GridProgress (made by
fanout_status.grid_progress, kept for an ended grid by grid_index.Rollups). Plain data, standard library only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CellView:
    """One cell of a fanned-out grid, as `mihd runs show GRID` and the dashboard list it."""

    index: int
    label: str
    status: str               # queued | running | orphaned | done | failed | killed | lost | corrupt
    reason: str | None        # why queued (Slurm's pending reason, waiting for a worker / an extraction)
    job_id: str | None        # Slurm: ARRAY_TASK
    run_dir: str
    started: float | None
    ended: float | None
    elapsed: float | None
    expected_s: float | None
    eta_s: float | None
    progress: float | None
    overrun: bool
    ari: float | None
    nmi: float | None
    error: str | None
    slice: str | None = None  # a study's cells are on several slices
    random_init: bool = False  # its score was made with random-init weights
    late: str | None = None    # running: why it will not end in time (its own Slurm time limit, late.py)

    def to_dict(self) -> dict:
        return dict(self.__dict__)  # its fields are plain values: asdict's deep copy cost a listing of 36,000 cells 1 s


@dataclass
class GridProgress:
    fraction: float | None
    eta_s: float | None
    confidence: str
    expected_s: float | None   # the whole grid, packed into its lanes
    overrun: bool
    cells: list[CellView]
