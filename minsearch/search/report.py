"""The prunable-components report: what each gene option does to each objective, and which
components can go within the task's constraint.

Built from objects a search holds (the results frame, the genes, the constraint, the Optuna
study); ``minsearch report`` reads them from a run folder first:

- **marginal means**: for each gene and option, the mean of each objective over the completed
  trials that chose it, and its difference from the trials that kept that gene (the effect);
- **importance**: Optuna's fANOVA and mean-decrease-impurity evaluators, per objective (how
  much of each objective's variance each gene explains across the trials);
- **can go**: per gene option that removes or replaces a component, the completed candidate
  with that option whose constrained objective (the first: accuracy, or a language model's
  loss) has the best *mean over seeds*, with its paired interval of the worsening from the
  baseline (:meth:`~minsearch.objectives.constraint.Constraint.judge`) and a verdict:
  ``can go`` (that candidate is feasible: its whole interval is within the limit), ``cannot
  go`` (every candidate with the option is infeasible: each interval wholly beyond the
  limit), ``not enough evidence`` otherwise, and always with one seed (no interval). With no
  limit set, the worsening is reported and nothing is judged (``not judged``): no limit is
  made up. Picking the best of several candidates by mean still favours a lucky one a
  little (the interval is that candidate's own, not corrected for the choice); it is a mean
  over seeds, never a single draw. Each row says how many trials, seeds and held-out
  examples it rests on.

With few trials or seeds these numbers are noisy: the report says what each rests on.
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


CAN_GO, CANNOT_GO, NO_EVIDENCE, NOT_JUDGED = ("can go", "cannot go", "not enough evidence",
                                             "not judged")


def _verdict(group: pd.DataFrame, best: pd.Series, constraint: Constraint) -> str:
    if constraint.max_worsening is None:
        return NOT_JUDGED
    has_interval = group["worsening:lo"].notna()
    if pd.notna(best["worsening:lo"]) and best["feasibility"] == "feasible":
        return CAN_GO
    if has_interval.all() and (group["feasibility"] == "infeasible").all():
        return CANNOT_GO
    return NO_EVIDENCE


def can_go(frame: pd.DataFrame, genes: list[Gene], constraint: Constraint) -> list[dict]:
    """Per gene and non-keep option (see the module docstring): ``trials`` with it, the
    ``best_trial`` by mean, its ``mean``, ``worsening`` (> 0: worse) with ``lo``/``hi`` (NaN
    without an interval), ``seeds``, ``held_out`` and the ``verdict``."""
    name = constraint.objective
    done = frame[frame["state"] == "COMPLETE"]
    if done[done["baseline"]].empty or name not in done:
        return []
    rows = []
    for gene in genes:
        used_by = done[f"gene:{gene.name}"]
        for option in gene.labels:
            if option == KEEP:
                continue
            group = done[used_by == option]
            row: dict[str, Any] = {"gene": gene.name, "sites": len(gene.sites),
                                   "option": option, "trials": int(len(group))}
            if group.empty:
                rows.append({**row, "best_trial": "", "mean": math.nan, "worsening": math.nan,
                             "lo": math.nan, "hi": math.nan, "seeds": 0, "held_out": 0,
                             "verdict": "-"})
                continue
            best = group.loc[group[name].idxmax() if constraint.direction == "max"
                             else group[name].idxmin()]
            rows.append({**row, "best_trial": str(best["trial_id"]), "mean": float(best[name]),
                         "worsening": float(best["worsening"]),
                         "lo": float(best["worsening:lo"]), "hi": float(best["worsening:hi"]),
                         "seeds": int(best["n_seeds"]), "held_out": int(best["held_out"]),
                         "verdict": _verdict(group, best, constraint)})
    return rows


def build_report(frame: pd.DataFrame, genes: list[Gene], directions: dict[str, str],
                 constraint: Constraint, study: optuna.Study | None,
                 parent: dict[str, Any] | None = None,
                 importance_note: str | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring); ``parent``: the settings'
    facts about the parent (the user's weights and their accuracy as delivered, if any);
    ``importance_note``: what the importances rest on, when not the final values (a
    multi-fidelity search: :func:`~minsearch.search.multifidelity.importance_note`)."""
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
        "importance_note": importance_note,
        "can_go": can_go(frame, genes, constraint),
        "parent": parent,
    }


def _interval(row: dict[str, Any]) -> str:
    if math.isnan(row["lo"]):
        return "- (one seed)" if row["trials"] else "-"
    return f"[{row['lo']:+.4f}, {row['hi']:+.4f}]"


def render_markdown(report: dict[str, Any]) -> str:
    constraint = Constraint.from_json(report["constraint"])
    name, change = constraint.objective, constraint.change
    total = f"{report['trials']['complete']} completed trials of {report['trials']['total']}"
    if constraint.max_worsening is None:
        limit = (f"no limit on the {name} {change} is set in the task, so whether an option "
                 f"stays within one is not judged")
    else:
        limit = (f"allowed {name} {change} {constraint.max_worsening:g}, judged on paired "
                 f"{constraint.confidence:.0%} intervals over seeds")
    parent = report.get("parent") or {}
    delivered = ([f"Parent: your weights {parent['weights']}, {describe_delivered(parent)}; "
                  f"the baseline trial is that model fine-tuned like every candidate.", ""]
                 if "as_delivered" in parent else [])
    lines = ["# Prunable components", "", *delivered, f"{total}; {limit}.", "",
             f"## Can go? Per option, the candidate with the best mean {name}", "",
             f"| gene | sites | option | trials | best trial | mean {name} | {change} vs "
             f"baseline | interval | seeds | held-out examples | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["can_go"]:
        lines.append(f"| {row['gene']} | {row['sites']} | {row['option']} | {row['trials']} | "
                     f"{row['best_trial'] or '-'} | {row['mean']:.4f} | "
                     f"{row['worsening']:+.4f} | {_interval(row)} | {row['seeds']} | "
                     f"{row['held_out']} | {row['verdict']} |")
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
    if report.get("importance_note"):
        lines += [report["importance_note"], ""]
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
    if "feasibility" not in frame:  # a folder written before intervals: from its records
        from minsearch.search.results import results_frame

        frame = results_frame(plan.run.read_records(), plan.gene_names, plan.directions,
                              plan.constraint)
    return write_plan_report(plan, frame)


def write_plan_report(plan: Plan, frame: pd.DataFrame) -> Path:
    """Build ``plan``'s report from ``frame`` and its study; write it (json and markdown)."""
    from minsearch.search.multifidelity import importance_note

    study = plan.run.load_study()
    report = build_report(frame, plan.genes, plan.directions, plan.constraint, study,
                          plan.settings.parent, importance_note(plan.halving, study))
    return plan.run.write_report(report, render_markdown(report))
