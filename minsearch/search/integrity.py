"""Check a run folder before a command reads it; rebuild what the other records can rebuild.

Each file of a run folder is written atomically, but a full disk, a copy cut short, a machine
that crashed or a hand edit can still damage one. Before ``resume``, ``front``, ``report`` and
``export`` read a folder, :func:`check_run_folder` reads every file the command needs and
writes nothing while doing so (the probes are in :mod:`minsearch.search.file_checks`):

- JSON must parse and hold what minsearch writes there; YAML must parse, validate, and neither
  stop before its last key nor end inside a line (a file cut at a line break still parses);
- SQLite stores are opened read-only (``mode=ro``), must pass ``PRAGMA quick_check`` and hold
  the Optuna study, or the MLflow experiment and parent run that ``mlflow.json`` names. A store
  with a hot journal beside it (a writer killed mid-transaction: the next writer rolls it back)
  is checked on a temporary copy, since that rollback is a write;
- Ray's pickles are walked opcode by opcode with :mod:`pickletools` (complete up to ``STOP``),
  never loaded; PyTorch files must be complete zip archives;
- ``results.csv`` must give every row the header's width and, for a finished search, hold one
  row per trial.

What is damaged is either rebuilt or refused (docs/search.md, "A damaged run folder"):

- rebuilt by ``resume``, one line on stderr each: ``trials.json`` from Ray's experiment state
  (``tune/``); ``mlflow.json`` from the MLflow store (the search's parent run, its trials'
  tags); a parent's weights (``parent/*.pt``) are deleted and trained again, same task and seed;
- refused: ``search.json``, ``task.yaml``, ``space.yaml``, ``genes.json`` (how the search was
  started); ``optuna.db`` (the study's history, what the sampler learned, cannot be rebuilt
  exactly: resuming without it would be another search); ``mlflow.db`` (tracking is secondary
  but is never dropped silently: the user restores it, or moves it and ``mlflow.json`` aside to
  continue with a new store); ``tune/`` (Ray cannot restore without it); ``driver.json`` (which
  processes the last driver left is unknown); for ``front``/``report``/``export``,
  ``results.csv`` and ``front.json`` (``resume`` rewrites them).

A refusal is one :class:`~minsearch.search.run_dir.DamagedFile` naming the first damaged file,
what is wrong and what to do, and listing any other; nothing has been written. :func:`rebuild`
runs only after every check passed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minsearch.search.file_checks import (
    csv_problem,
    pickle_problem,
    sqlite_problem,
    torch_file_problem,
    yaml_problem,
)
from minsearch.search.results import TrialRecord
from minsearch.search.run_dir import (
    STATUSES,
    STUDY_NAME,
    DamagedFile,
    RunDir,
    Settings,
    json_problem,
    read_json,
)
from minsearch.search.space import SpaceConfig
from minsearch.search.storage import TUNER, TuneStore
from minsearch.tasks.config import TaskConfig

if TYPE_CHECKING:
    from minsearch.search.plan import Plan

MLFLOW_TABLES = ("experiments", "runs")  # MLflow's SQL schema, read here only to find records
INPUTS_REMEDY = ("it records how the search was started and cannot be rebuilt from the other "
                 "files: restore it from a backup, or start a new search from your task and "
                 "space files")


@dataclass(frozen=True)
class Damage:
    """One damaged file: what is wrong, and what the user can do -- or, when ``rebuild`` is
    set, how the command rebuilds it (``rebuild(plan, damage)`` returns what it did)."""

    path: Path
    problem: str
    remedy: str
    rebuild: Callable[[Plan, Damage], str] | None = None


Check = Callable[[RunDir, Settings, str], Iterator[Damage]]


def _json_bytes(data: bytes) -> str | None:
    """What is wrong with JSON ``data`` read from Ray's experiment (None: nothing)."""
    if not data:
        return "it is empty (0 bytes)"
    try:
        json.loads(data.decode())
    except UnicodeDecodeError as err:
        return f"it cannot be read as text ({err})"
    except json.JSONDecodeError as err:
        return json_problem(data.decode(), err)
    return None


def _json(path: Path) -> tuple[Any, str | None]:
    try:
        return read_json(path), None
    except DamagedFile as err:
        return None, err.problem


# -- what each command needs ----------------------------------------------------------------

def _settings(run: RunDir) -> Settings:
    """``search.json``, checked first: every other check depends on it."""
    data, problem = _json(run.settings_json)
    required = [f.name for f in fields(Settings) if f.default is MISSING
                and f.default_factory is MISSING and f.name != "constraint"]
    if problem is None:
        if not isinstance(data, dict):
            problem = f"it holds {type(data).__name__}, not the search's settings"
        elif missing := [k for k in required if k not in data]:
            problem = f"it holds no {', '.join(f'`{k}`' for k in missing)}"
        elif "constraint" in data and not (isinstance(data["constraint"], dict) and {
                "objective", "direction"} <= set(data["constraint"])):
            problem = "its `constraint` is incomplete"
        elif data.get("status", "created") not in STATUSES:
            problem = f"its status {data['status']!r} is none of {', '.join(STATUSES)}"
    if problem:
        raise DamagedFile(run.settings_json, problem, INPUTS_REMEDY)
    return Settings.from_json(data)  # a folder of an older minsearch: its own message


def _task_keys(data: dict) -> list[str]:
    return list(TaskConfig.from_flat(data).to_flat())


def _space_keys(data: dict) -> list[str]:
    return list(SpaceConfig.from_json(data).to_json())


def _genes_problem(data: Any) -> str | None:
    if not isinstance(data, list) or not data:
        return "it holds no list of genes"
    for gene in data:
        if not (isinstance(gene, dict) and {"name", "kind", "sites", "options"} <= set(gene)
                and isinstance(gene["sites"], list) and isinstance(gene["options"], dict)
                and gene["options"]):
            return f"gene {gene.get('name') if isinstance(gene, dict) else gene!r} is incomplete"
    return None


def _check_inputs(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    for path, keys in ((run.task_yaml, _task_keys), (run.space_yaml, _space_keys)):
        problem = yaml_problem(path, keys)
        if problem:
            yield Damage(path, problem, INPUTS_REMEDY)
    data, problem = _json(run.genes_json)
    problem = problem or _genes_problem(data)
    if problem:
        yield Damage(run.genes_json, problem, INPUTS_REMEDY)


def _check_driver(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    if not run.driver_json.exists():
        return
    data, problem = _json(run.driver_json)
    if problem is None and not (isinstance(data, dict) and {"pid", "start", "processes"}
                                <= set(data)):
        problem = "it does not hold the last driver's pid and processes"
    if problem:
        yield Damage(run.driver_json, problem,
                     f"which processes the last driver left running is unknown: make sure no "
                     f"minsearch or Ray process of this search is alive (e.g. `ps -ef | grep "
                     f"ray`), then delete {run.driver_json} and resume again")


def _check_tune(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    store = TuneStore(run, settings.storage)
    remedy = (f"Ray's experiment state cannot be rebuilt from the other files, so the search "
              f"cannot go on: restore {store.where} from a backup, or start a new search; "
              f"`minsearch front`, `report` and `export` still read the finished trials")
    if not store.has_tuner:
        if settings.status == "finished":
            yield Damage(store.shown(TUNER), "it is missing", remedy)
        return  # stopped before Ray saved anything: resume starts the trials over
    snapshots = store.snapshots()
    if settings.status == "finished" and "experiment" not in snapshots:
        yield Damage(store.shown(""), "it holds no snapshot of Ray's experiment", remedy)
    files = {TUNER: "pickle"}
    files.update({name: "json" if kind == "experiment" else "pickle"
                  for kind, name in snapshots.items()})
    for name, form in files.items():
        try:
            data = store.read(name)
        except OSError as err:
            problem: str | None = f"it cannot be read ({err})"
        else:
            problem = pickle_problem(data) if form == "pickle" else _json_bytes(data)
        if problem:
            yield Damage(store.shown(name), problem, remedy)


def study_problem(run: RunDir) -> str | None:
    """What is wrong with the run's Optuna study (None: nothing), found without writing."""
    return sqlite_problem(run.study_db, ("studies", "trials"), [
        ("SELECT 1 FROM studies WHERE study_name = ?", (STUDY_NAME,),
         f"it holds no study {STUDY_NAME!r}")])


def _check_study(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    if command == "resume" and not TuneStore(run, settings.storage).has_tuner:
        return  # resume starts over and deletes the study
    if command != "resume" and not run.study_db.exists():
        return  # a search that never created its study: reports go without it
    problem = study_problem(run)
    if problem:
        yield Damage(run.study_db, problem,
                     f"the Optuna study (every trial the sampler has learned from) cannot be "
                     f"rebuilt exactly from the other files: restore {run.study_db.name} from a "
                     f"backup, or start a new search (`minsearch search {run.task_yaml} --space "
                     f"{run.space_yaml}`); `minsearch front {run.path}` still shows the "
                     f"finished trials")


def _state_problem(data: Any) -> str | None:
    keys = {"tracking_uri", "experiment_id", "parent_run_id", "trials"}
    if not (isinstance(data, dict) and keys <= set(data) and isinstance(data["trials"], dict)
            and isinstance(data["tracking_uri"], str)):
        return "it does not hold the tracking URI, experiment, parent run and trials"
    return None


def _sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI; None for any other store."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):].split("?", 1)[0]) if uri.startswith(prefix) else None


def _check_tracking(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    files = run.tracking
    state = None
    if files.state.exists():
        data, problem = _json(files.state)
        problem = problem or _state_problem(data)
        if problem:
            yield Damage(files.state, problem, "", _recover_tracking_state)
        else:
            state = data
    uri = (state or {}).get("tracking_uri") or settings.tracking_uri or files.default_uri
    store = _sqlite_file(uri)
    if store is None:
        return  # a tracking server: nothing here to check
    remedy = (f"MLflow's record of this search cannot be rebuilt from the other files: "
              f"restore {store} from a backup, or move it and {files.state} aside (e.g. add "
              f"`.damaged` to their names) and resume again to go on with a new MLflow store "
              f"(the trials finished so far are then in results.csv, not in MLflow)")
    if not store.exists():
        if state and state["parent_run_id"]:
            yield Damage(store, f"it is missing ({files.state.name} names it as this "
                                f"search's MLflow store)", remedy)
        return
    rows = []
    if state and state["experiment_id"] is not None:
        rows.append(("SELECT 1 FROM experiments WHERE experiment_id = ?",
                     (state["experiment_id"],), f"it holds no experiment "
                     f"{state['experiment_id']} (the one {files.state.name} names)"))
    if state and state["parent_run_id"]:
        rows.append(("SELECT 1 FROM runs WHERE run_uuid = ?", (state["parent_run_id"],),
                     f"it holds no run {state['parent_run_id']} (the search's parent run)"))
    problem = sqlite_problem(store, MLFLOW_TABLES, rows)
    if problem:
        yield Damage(store, problem, remedy)


def _check_records(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    if not run.records_json.exists():
        return
    data, problem = _json(run.records_json)
    known = {f.name for f in fields(TrialRecord)}
    if problem is None and not (isinstance(data, list) and all(
            isinstance(r, dict) and {"trial_id", "params"} <= set(r) <= known for r in data)):
        problem = "it does not hold trial records"
    if problem:
        yield Damage(run.records_json, problem, "", _rebuild_records)


def _check_parent(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    if settings.status == "finished":
        return  # finishing again trains nothing
    for path in sorted(run.parent_dir.glob("*.pt")):
        problem = torch_file_problem(path, read_all=True)
        if problem:
            yield Damage(path, problem, "", _retrain_parent)


def _check_results(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    if not run.results_csv.exists():
        return  # not written yet: the reader says so
    rows, problem = csv_problem(run.results_csv)
    if problem is None and settings.status == "finished" and rows != settings.trials:
        problem = f"it holds {rows} trials, but the finished search ran {settings.trials}"
    if problem:
        yield Damage(run.results_csv, problem, _results_remedy(run))


def _check_front_summary(run: RunDir, settings: Settings, command: str) -> Iterator[Damage]:
    if not run.front_json.exists():
        return
    data, problem = _json(run.front_json)
    if problem is None and not (isinstance(data, dict) and {"directions", "front"} <= set(data)):
        problem = "it does not hold the front's summary"
    if problem:
        yield Damage(run.front_json, problem, _results_remedy(run))


def _results_remedy(run: RunDir) -> str:
    return (f"`minsearch resume {run.path}` rewrites it from Ray's experiment state (and goes "
            f"on with the search if it is unfinished)")


CHECKS: dict[str, tuple[Check, ...]] = {  # in order: a rebuild that may refuse comes first
    "resume": (_check_inputs, _check_driver, _check_tune, _check_study, _check_tracking,
               _check_records, _check_parent),
    "front": (_check_results, _check_front_summary),
    "report": (_check_inputs, _check_results, _check_study),
    "export": (_check_inputs, _check_results),
}


def check_run_folder(run: RunDir, command: str) -> list[Damage]:
    """Check every file that ``command`` (a key of :data:`CHECKS`) reads in the run folder
    ``run``, writing nothing. Returns the damaged files the command rebuilds (pass them to
    :func:`rebuild`); raises a :class:`~minsearch.search.run_dir.DamagedFile` when one cannot
    be rebuilt."""
    settings = _settings(run)
    found = [damage for check in CHECKS[command] for damage in check(run, settings, command)]
    refused = [d for d in found if d.rebuild is None]
    if not refused:
        return found
    first = refused[0]
    others = [str(d.path.relative_to(run.path)) if d.path.is_relative_to(run.path)
              else str(d.path) for d in found if d is not first]  # a store may lie elsewhere
    also = f" (also damaged: {', '.join(others)})" if others else ""
    raise DamagedFile(first.path, first.problem, first.remedy + also)


# -- rebuilding -----------------------------------------------------------------------------

def rebuild(plan: Plan, damaged: list[Damage]) -> None:
    """Rebuild each of ``damaged`` (from :func:`check_run_folder`, in its order) and say so on
    stderr, one line each."""
    for damage in damaged:
        assert damage.rebuild is not None, damage
        done = damage.rebuild(plan, damage)
        print(f"minsearch resume: {damage.path} was damaged: {damage.problem}; {done}.",
              file=sys.stderr)


def _recover_tracking_state(plan: Plan, damage: Damage) -> str:
    from minsearch.tracking import recover_state

    runs = recover_state(plan.run.tracking, plan.settings.tracking_uri)
    return f"rebuilt it from the MLflow store ({runs} runs found by their tags)"


def _rebuild_records(plan: Plan, damage: Damage) -> str:
    from minsearch.search.finish import collect_records

    has_state = plan.tune.has_tuner and plan.tune.saved
    records = collect_records(plan) if has_state else []  # no snapshot: no trial is kept
    plan.run.write_records(records)
    return (f"rebuilt it from Ray's experiment state in {plan.tune.where} ({len(records)} "
            f"trials)")


def _retrain_parent(plan: Plan, damage: Damage) -> str:
    damage.path.unlink()
    return "deleted it: the parent is trained again (same task, same seed)"
