"""What a search shows while it runs and when it ends (``rich``), instead of Ray's log flood.

The live view: trials done / running / failed out of the total, an ETA from the mean duration
of finished trials, and the front so far. The final view: the front as a table, with the
hypervolume and its reference point.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from minsearch.objectives.constraint import Constraint
from minsearch.search.results import TrialRecord, results_frame, sort_front

_FORMATS = {"bytes": lambda v: f"{v / 1024:.1f} KiB", "fraction": lambda v: f"{v:.3f}"}


def fmt(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if name.endswith("_bytes"):
        return _FORMATS["bytes"](float(value))
    if name == "flops":
        return f"{float(value) / 1e6:.2f} M"
    if name.endswith("_ms"):
        return f"{float(value):.2f} ms"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def front_table(frame: pd.DataFrame, directions: dict[str, str], title: str,
                limit: int = 12) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("trial")
    table.add_column("changes (vs all keep)")
    for name, direction in directions.items():
        table.add_column(f"{name} {'↑' if direction == 'max' else '↓'}", justify="right")
    if frame.empty or "pareto" not in frame:
        return table
    front = sort_front(frame[frame["pareto"]], directions)
    genes = [c for c in frame.columns if c.startswith("gene:")]
    for _, row in front.head(limit).iterrows():
        changes = [f"{c[5:]}={row[c]}" for c in genes if str(row[c]) not in ("keep", "", "nan")]
        label = "baseline" if row["baseline"] else (", ".join(changes) or "all keep")
        table.add_row(str(row["trial_id"]), label, *[fmt(n, row.get(n)) for n in directions])
    base = frame[frame["baseline"] & ~frame["pareto"] & (frame["state"] == "COMPLETE")]
    for _, row in base.iterrows():  # dominated: shown for reference, dimmed
        table.add_row(str(row["trial_id"]), "baseline (dominated, for reference)",
                      *[fmt(n, row.get(n)) for n in directions], style="dim")
    return table


def summary_line(summary: dict[str, Any]) -> str:
    if summary.get("hypervolume") is None:
        return "hypervolume: n/a (needs a completed baseline and front)"
    ref = ", ".join(f"{k} {fmt(k, v)}" for k, v in summary["reference_point"].items())
    return (f"hypervolume {summary['hypervolume']:.4f} (baseline alone "
            f"{summary['baseline_hypervolume']:.4f}; objectives divided by the baseline's; "
            f"reference point: {ref})")


class LiveView:
    """A ``rich.Live`` panel fed with trial records by the search callback."""

    def __init__(self, total: int, concurrency: int, directions: dict[str, str],
                 gene_names: list[str], constraint: Constraint,
                 console: Console | None = None) -> None:
        self.total = total
        self.concurrency = concurrency
        self.directions = directions
        self.gene_names = gene_names
        self.constraint = constraint
        self.console = console or Console(stderr=True)
        self.started = time.monotonic()
        self.live: Live | None = None

    def start(self) -> None:
        self.started = time.monotonic()
        self.live = Live(Text("starting trials ..."), console=self.console,
                         refresh_per_second=2, transient=True)
        self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def update(self, records: list[TrialRecord]) -> None:
        if self.live is None:
            return
        self.live.update(self.render(records))

    def render(self, records: list[TrialRecord]) -> Group:
        states = [r.state for r in records]
        done = sum(s in ("COMPLETE", "FAILED", "PRUNED") for s in states)
        finished = [r.seconds for r in records if r.state == "COMPLETE" and r.seconds]
        remaining = self.total - done
        eta = "?"
        if finished and remaining >= 0:
            seconds = sum(finished) / len(finished) * remaining / max(1, self.concurrency)
            eta = time.strftime("%M:%S", time.gmtime(seconds))
        elapsed = time.strftime("%M:%S", time.gmtime(time.monotonic() - self.started))
        head = Text(f"trials {done}/{self.total} done · {states.count('RUNNING')} running · "
                    f"{states.count('FAILED')} failed · {states.count('PRUNED')} pruned · "
                    f"elapsed {elapsed} · ETA {eta}")
        frame = results_frame(records, self.gene_names, self.directions, self.constraint)
        title = f"front so far ({self.constraint.describe()})"
        return Group(head, front_table(frame, self.directions, title, limit=8))
