"""What a search shows while it runs and when it ends (``rich``), instead of Ray's log flood.

The live view: trials done / running / failed out of the total, an ETA from the mean duration
of finished trials, and the front so far. The final view: the front as a table (means with
the half-width of their intervals over seeds, the paired worsening with its interval, how
sure each place is, and the uncertain contenders beside it), with the hypervolume and its
reference point.
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


def fmt_interval(name: str, row: pd.Series) -> str:
    """``0.931 ±0.019`` with the half-width of the row's interval for ``name``; the bare value
    for an exact one (a cost) or without an interval (one seed)."""
    value, lo, hi = row.get(name), row.get(f"{name}:lo"), row.get(f"{name}:hi")
    text = fmt(name, value)
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi) or lo == hi:
        return text
    return f"{text} ±{fmt(name, (hi - lo) / 2).split()[0]}"


def _worsening(row: pd.Series) -> str:
    if pd.isna(row.get("worsening")):
        return "-"
    if pd.isna(row.get("worsening:lo")):
        return f"{row['worsening']:+.3f}"
    return f"{row['worsening']:+.3f} [{row['worsening:lo']:+.3f}, {row['worsening:hi']:+.3f}]"


def _sure(row: pd.Series) -> str:
    if row.get("contender"):
        return "uncertain"
    share = row.get("stability")
    return "-" if share is None or pd.isna(share) else f"{share:.0%}"


def front_table(frame: pd.DataFrame, directions: dict[str, str], title: str,
                limit: int = 12, constraint: Constraint | None = None) -> Table:
    """The front's members (means ± half-width of each objective's interval over seeds, the
    paired worsening of the first objective with its interval, and how sure each place is:
    the share of seed resamples in which it stays on the front), then the ``uncertain``
    contenders (dimmed), then a dominated baseline (dimmed)."""
    table = Table(title=title, title_justify="left")
    table.add_column("trial")
    table.add_column("changes (vs all keep)")
    for name, direction in directions.items():
        table.add_column(f"{name} {'↑' if direction == 'max' else '↓'}", justify="right")
    change = (f"{constraint.objective} {constraint.change}" if constraint is not None
              else "worsening")
    table.add_column(f"{change} [interval]", justify="right")
    table.add_column("on front", justify="right")
    if frame.empty or "pareto" not in frame:
        return table
    genes = [c for c in frame.columns if c.startswith("gene:")]

    def add(row: pd.Series, label: str | None = None, style: str | None = None) -> None:
        changes = [f"{c[5:]}={row[c]}" for c in genes if str(row[c]) not in ("keep", "", "nan")]
        label = label or ("baseline" if row["baseline"] else (", ".join(changes) or "all keep"))
        table.add_row(str(row["trial_id"]), label, *[fmt_interval(n, row) for n in directions],
                      _worsening(row), _sure(row), style=style)

    for _, row in sort_front(frame[frame["pareto"]], directions).head(limit).iterrows():
        add(row)
    contenders = frame[frame["contender"]] if "contender" in frame else frame.iloc[:0]
    for _, row in sort_front(contenders, directions).head(limit).iterrows():
        add(row, style="dim")  # feasibility uncertain: beside the front, never on it
    base = frame[frame["baseline"] & ~frame["pareto"] & (frame["state"] == "COMPLETE")]
    for _, row in base.iterrows():  # dominated: shown for reference, dimmed
        add(row, "baseline (dominated, for reference)", style="dim")
    return table


def seeds_line(frame: pd.DataFrame, constraint: Constraint) -> str:
    """What the table's numbers rest on: seeds per trial, held-out examples, the intervals'
    confidence, and the feasibility counts."""
    done = frame[frame["state"] == "COMPLETE"] if "state" in frame else frame.iloc[:0]
    if done.empty or "n_seeds" not in done:
        return ""
    seeds = int(done["n_seeds"].max())
    counts = done["feasibility"].value_counts().to_dict() if "feasibility" in done else {}
    verdicts = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("feasible", "uncertain",
                                                            "infeasible"))
    examples = f"{int(done['held_out'].max())} held-out examples per measurement"
    if seeds < 2:
        return (f"1 seed per trial, {examples}: no intervals; feasibility decided on single "
                f"values ({verdicts}); set `seeds:` in the task for intervals")
    return (f"{seeds} seeds per trial, {examples}; ± is the half-width of the "
            f"{constraint.confidence:.0%} t-interval over seeds; feasibility on the paired "
            f"interval of the {constraint.objective} {constraint.change}: {verdicts}; "
            f"'on front': share of seed-bootstrap resamples in which the member stays "
            f"non-dominated")


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
        return Group(head, front_table(frame, self.directions, title, limit=8,
                                       constraint=self.constraint))
