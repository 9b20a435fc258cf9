"""The front figure: the constrained objective (accuracy, or a language model's loss) against
every other objective, front members highlighted, candidates of uncertain feasibility with
the interval of the constrained objective as a bar."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from minsearch.objectives.constraint import Constraint


def plot_front(frame: pd.DataFrame, directions: dict[str, str], constraint: Constraint,
               path: Path) -> Path | None:
    """Write the figure to ``path``; returns it, or None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(directions)
    if frame.empty or len(names) < 2:
        return None
    y_name = constraint.objective
    x_names = [n for n in names if n != y_name]
    limit = "infeasible"
    if constraint.max_worsening is not None:
        limit += f" ({y_name} {constraint.change} > {constraint.max_worsening:g})"
    done = frame[frame["state"] == "COMPLETE"]
    if done.empty:
        return None
    fig, axes = plt.subplots(1, len(x_names), figsize=(4.2 * len(x_names), 3.8), squeeze=False)
    for ax, x_name in zip(axes[0], x_names, strict=True):
        uncertain = done["feasibility"] == "uncertain"
        infeasible = done[~done["feasible"] & ~uncertain]
        rest = done[done["feasible"] & ~done["pareto"]]
        front = done[done["pareto"]].sort_values(x_name)
        ax.scatter(infeasible[x_name], infeasible[y_name], c="lightgray", s=18,
                   label=limit)
        if uncertain.any():  # the interval of the first objective over seeds as a bar
            unsure = done[uncertain]
            ax.errorbar(unsure[x_name], unsure[y_name], fmt="o", c="tab:orange", ms=4,
                        yerr=[unsure[y_name] - unsure[f"{y_name}:lo"],
                              unsure[f"{y_name}:hi"] - unsure[y_name]],
                        label="feasibility uncertain")
        ax.scatter(rest[x_name], rest[y_name], c="tab:blue", s=18, label="dominated")
        ax.plot(front[x_name], front[y_name], "o-", c="tab:red", ms=5, label="front")
        base = done[done["baseline"]]
        ax.scatter(base[x_name], base[y_name], marker="*", s=160, c="black", label="baseline")
        arrow = "lower is better" if directions[x_name] == "min" else "higher is better"
        ax.set_xlabel(f"{x_name} ({arrow})")
        ax.set_ylabel(f"{y_name} ({'higher' if constraint.direction == 'max' else 'lower'} "
                      f"is better)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("minsearch: front on all objectives, shown in pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
