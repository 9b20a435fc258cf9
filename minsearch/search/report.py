"""The prunable-components report: what each gene option does to each objective, and which
components can go within the task's constraint.

Built from objects a search holds (the results frame, the genes, the constraint, the Optuna
study); ``minsearch report`` reads them from a run folder first:

- **marginal means**: for each gene and option, the mean of each objective over the completed
  trials that chose it, and its difference from the trials that kept that gene (the effect);
- **importance**: Optuna's fANOVA and mean-decrease-impurity evaluators, per objective (how
  much of each objective's variance each gene explains across the trials);
- **can go**: per gene option that removes or replaces a component, the best value of the
  constrained objective (the first: accuracy, or a language model's loss) that any completed
  trial reached with it, how much worse than the baseline's that is, and whether that is
  within the constraint's limit. With no limit set, the worsening is reported and "within" is
  not judged (None): no limit is made up.

With few trials these numbers are noisy: the report says how many trials each rests on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from minsearch.objectives.constraint import Constraint
from minsearch.search.run_dir import describe_delivered
from minsearch.search.space import KEEP, Gene

if TYPE_CHECKING:
    import optuna

    from minsearch.search.plan import Plan


def marginal_means(frame: pd.DataFrame, gene: str, objectives: list[str]) -> list[dict]:
    """Rows ``{option, n, <objective>: mean, <objective>_effect: mean - keep's mean}``."""
    column = f"gene:{gene}"
    done = frame[frame["state"] == "COMPLETE"]
    rows = []
    keep = done[done[column] == KEEP]
    for option, group in done.groupby(column, sort=True):
        row: dict[str, Any] = {"option": str(option), "n": int(len(group))}
        for name in objectives:
            mean = float(group[name].mean())
            row[name] = mean
            row[f"{name}_effect"] = mean - float(keep[name].mean()) if len(keep) else math.nan
        rows.append(row)
    return rows


def importances(study: optuna.Study | None, objectives: list[str]
                ) -> dict[str, dict[str, dict[str, float]]]:
    """``{evaluator: {objective: {gene: importance}}}``; objectives that cannot be evaluated
    (too few completed trials, or no gene varied) are left out."""
    import optuna

    if study is None:
        return {}
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    evaluators = {"fanova": optuna.importance.FanovaImportanceEvaluator(seed=0),
                  "mean_decrease_impurity":
                      optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label, evaluator in evaluators.items():
        for i, name in enumerate(objectives):
            try:
                values = optuna.importance.get_param_importances(
                    study, evaluator=evaluator, target=lambda t, i=i: t.values[i])
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue
            out.setdefault(label, {})[name] = {k: float(v) for k, v in values.items()}
    return out


def can_go(frame: pd.DataFrame, genes: list[Gene], constraint: Constraint) -> list[dict]:
    """Per gene and non-keep option: the best value of the constraint's objective reached with
    it, its ``worsening`` from the baseline's (> 0: worse), and ``within`` the limit (True or
    False; None when no limit is set or no trial used the option)."""
    name = constraint.objective
    done = frame[frame["state"] == "COMPLETE"]
    base = done[done["baseline"]]
    if base.empty or name not in done:
        return []
    baseline = float(base[name].iloc[0])
    rows = []
    for gene in genes:
        used_by = done[f"gene:{gene.name}"]
        for option in gene.labels:
            if option == KEEP:
                continue
            values = done.loc[used_by == option, name]
            if values.empty:
                best, worse, within = math.nan, math.nan, None
            else:
                best = float(values.max() if constraint.direction == "max" else values.min())
                worse = float(constraint.worsening(best, baseline))
                within = (None if constraint.max_worsening is None
                          else bool(constraint.feasible(best, baseline)))
            rows.append({"gene": gene.name, "sites": len(gene.sites), "option": option,
                         "trials": int(len(values)), "best": best, "worsening": worse,
                         "within": within})
    return rows


def build_report(frame: pd.DataFrame, genes: list[Gene], directions: dict[str, str],
                 constraint: Constraint, study: optuna.Study | None,
                 parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring); ``parent``: the settings'
    facts about the parent (the user's weights and their accuracy as delivered, if any)."""
    objectives = list(directions)
    done = frame[frame["state"] == "COMPLETE"]
    base = done[done["baseline"]]
    return {
        "trials": {"complete": int(len(done)), "total": int(len(frame))},
        "baseline": {k: float(base[k].iloc[0]) for k in objectives} if len(base) else None,
        "constraint": constraint.to_json(),
        "directions": dict(directions),
        "marginal_means": {g.name: marginal_means(frame, g.name, objectives) for g in genes},
        "importance": importances(study, objectives),
        "can_go": can_go(frame, genes, constraint),
        "parent": parent,
    }


def _within(row: dict[str, Any]) -> str:
    if row["trials"] == 0:
        return "-"
    return {True: "yes", False: "no", None: "not judged"}[row["within"]]


def render_markdown(report: dict[str, Any]) -> str:
    constraint = Constraint.from_json(report["constraint"])
    name, change = constraint.objective, constraint.change
    total = f"{report['trials']['complete']} completed trials of {report['trials']['total']}"
    if constraint.max_worsening is None:
        limit = (f"no limit on the {name} {change} is set in the task, so whether an option "
                 f"stays within one is not judged")
    else:
        limit = f"allowed {name} {change} {constraint.max_worsening:g}"
    parent = report.get("parent") or {}
    delivered = ([f"Parent: your weights {parent['weights']}, {describe_delivered(parent)}; "
                  f"the baseline trial is that model fine-tuned like every candidate.", ""]
                 if "as_delivered" in parent else [])
    lines = ["# Prunable components", "", *delivered, f"{total}; {limit}.", "",
             f"## Can go? The best {name} reached with each option", "",
             f"| gene | sites | option | trials | best {name} | {change} vs baseline | "
             f"within |", "|---|---|---|---|---|---|---|"]
    for row in report["can_go"]:
        lines.append(f"| {row['gene']} | {row['sites']} | {row['option']} | {row['trials']} | "
                     f"{row['best']:.4f} | {row['worsening']:+.4f} | {_within(row)} |")
    objectives = list(report["directions"])
    lines += ["", "## Marginal means (effect = mean with option - mean with keep)", ""]
    for gene, rows in report["marginal_means"].items():
        lines += [f"### {gene}", "", "| option | n | " + " | ".join(objectives) + " |",
                  "|---|---|" + "---|" * len(objectives)]
        for row in rows:
            cells = [f"{row[o]:.4g} ({row[f'{o}_effect']:+.3g})" for o in objectives]
            lines.append(f"| {row['option']} | {row['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Importance (Optuna evaluators, per objective)", ""]
    for evaluator, per_objective in report["importance"].items():
        for objective, values in per_objective.items():
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(values.items())[:6])
            lines.append(f"- {evaluator} / {objective}: {top}")
    if not report["importance"]:
        lines.append("- not available (too few completed trials or no gene varied)")
    return "\n".join(lines) + "\n"


def report_run(plan: Plan) -> Path:
    """The report of a run folder's search (``minsearch report``): read its results, write
    ``report.json`` and ``report.md``; returns the markdown's path."""
    frame = plan.run.read_results()
    report = build_report(frame, plan.genes, plan.directions, plan.constraint,
                          plan.run.load_study(), plan.settings.parent)
    return plan.run.write_report(report, render_markdown(report))
