"""The prunable-components report: what each gene option does to each objective, and which
sites can go within the allowed accuracy drop.

Read from a run folder (``results.csv``, ``genes.json``, ``search.json``, ``optuna.db``):

- **marginal means**: for each gene and option, the mean of each objective over the completed
  trials that chose it, and its difference from the trials that kept that gene (the effect);
- **importance**: Optuna's fANOVA and mean-decrease-impurity evaluators, per objective (how
  much of each objective's variance each gene explains across the trials);
- **can go**: per gene option that removes or replaces a component, the best accuracy any
  completed trial reached with it, and whether that is within ``max_accuracy_drop`` of the
  baseline (with no constraint set: within 0.01). The first objective stands in for accuracy
  when it is not accuracy: for a language model, the lowest ``loss`` and
  ``max_loss_increase``.

With few trials these numbers are noisy: the report says how many trials each rests on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from minsearch.pareto import worsening

DEFAULT_DROP = 0.01
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


def marginal_means(frame: pd.DataFrame, gene: str, objectives: list[str]) -> list[dict]:
    """Rows ``{option, n, <objective>: mean, <objective>_effect: mean - keep's mean}``."""
    column = f"gene:{gene}"
    done = frame[frame["state"] == "COMPLETE"]
    rows = []
    keep = done[done[column] == "keep"]
    for option, group in done.groupby(column, sort=True):
        row: dict[str, Any] = {"option": str(option), "n": int(len(group))}
        for name in objectives:
            mean = float(group[name].mean())
            row[name] = mean
            row[f"{name}_effect"] = mean - float(keep[name].mean()) if len(keep) else math.nan
        rows.append(row)
    return rows


def importances(run_dir: Path, objectives: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """``{evaluator: {objective: {gene: importance}}}``; objectives that cannot be evaluated
    (too few completed trials, or no gene varied) are left out."""
    import optuna

    from minsearch.search.plan import STUDY_NAME, storage_url

    if not (run_dir / "optuna.db").is_file():
        return {}
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(run_dir))
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


def can_go(frame: pd.DataFrame, genes: list[dict], max_drop: float,
           objective: str = "accuracy", direction: str = "max") -> list[dict]:
    """Per gene and non-keep option: the best ``objective`` reached with it, and whether that
    is within ``max_drop`` of the baseline's (below it when maximised, above it when
    minimised)."""
    done = frame[frame["state"] == "COMPLETE"]
    base = done[done["baseline"]]
    if base.empty or objective not in done:
        return []
    baseline = float(base[objective].iloc[0])
    rows = []
    for gene in genes:
        column = f"gene:{gene['name']}"
        for option in gene["options"]:
            if option == "keep":
                continue
            used = done[done[column] == option]
            values = used[objective]
            best = math.nan if used.empty else float(
                values.max() if direction == "max" else values.min())
            within = len(used) and worsening(best, baseline, direction) <= max_drop + 1e-12
            rows.append({"gene": gene["name"], "sites": len(gene["sites"]), "option": option,
                         "trials": int(len(used)), "best": best, "within_drop": bool(within)})
    return rows


def build_report(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    settings = json.loads((run_dir / "search.json").read_text())
    genes = json.loads((run_dir / "genes.json").read_text())
    frame = pd.read_csv(run_dir / "results.csv", keep_default_na=False, na_values=[""])
    frame["baseline"] = frame["baseline"].astype(str).str.lower() == "true"
    objectives = list(settings["directions"])
    import yaml

    task = yaml.safe_load((run_dir / "task.yaml").read_text())
    first, direction = next(iter(settings["directions"].items()))
    drop = task.get("max_accuracy_drop")
    if drop is None:
        drop = task.get("max_loss_increase")
    drop = DEFAULT_DROP if drop is None else float(drop)
    done = frame[frame["state"] == "COMPLETE"]
    base = done[done["baseline"]]
    return {
        "trials": {"complete": int(len(done)), "total": int(len(frame))},
        "baseline": {k: float(base[k].iloc[0]) for k in objectives} if len(base) else None,
        "max_accuracy_drop": drop,  # the allowed worsening of `objective`
        "objective": first,
        "directions": settings["directions"],
        "marginal_means": {g["name"]: marginal_means(frame, g["name"], objectives)
                           for g in genes},
        "importance": importances(run_dir, objectives),
        "can_go": can_go(frame, genes, drop, first, direction),
    }


def render_markdown(report: dict[str, Any]) -> str:
    objective = report.get("objective", "accuracy")
    change = "drop" if report["directions"].get(objective, "max") == "max" else "increase"
    lines = ["# Prunable components", "",
             f"{report['trials']['complete']} completed trials of {report['trials']['total']}; "
             f"allowed {objective} {change} {report['max_accuracy_drop']}.", ""]
    lines += [f"## Can go within the allowed {objective} {change}", "",
              f"| gene | sites | option | trials | best {objective} | within {change} |",
              "|---|---|---|---|---|---|"]
    for row in report["can_go"]:
        lines.append(f"| {row['gene']} | {row['sites']} | {row['option']} | {row['trials']} | "
                     f"{row['best']:.4f} | {'yes' if row['within_drop'] else 'no'} |")
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


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.json`` and ``report.md`` into the run folder; returns the markdown path."""
    run_dir = Path(run_dir)
    report = build_report(run_dir)
    (run_dir / REPORT_JSON).write_text(json.dumps(report, indent=1, default=float))
    path = run_dir / REPORT_MD
    path.write_text(render_markdown(report))
    return path
