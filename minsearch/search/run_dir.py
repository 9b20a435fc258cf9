"""The run folder of one search: every path and file format in one place.

No other module spells a file name of the run folder; they ask a :class:`RunDir`. A search
writes with it as it goes; commands run later on a folder (``resume``, ``front``, ``report``,
``export``) read with it. Writes are atomic (a temporary file renamed into place), so a killed
driver never leaves half a file behind. Layout::

    RUN_DIR/
      task.yaml, space.yaml   the validated inputs (resume needs nothing else)
      genes.json              genes, the sites each ties, and their option specs
      search.json             :class:`Settings`: trials, directions, constraint, status, counts
      parent/                 the parent's weights (``init: parent``: trained, or the user's)
      tune/                   Ray Tune's experiment (trial folders, checkpoints)
      optuna.db               the Optuna study (SQLite, study ``minsearch``)
      mlflow.json             MLflow state: tracking URI, parent run, trial -> run
      mlflow.db, mlartifacts/ the default MLflow store
      trials.json             live trial records (written after every finished trial)
      results.csv             one row per trial (booleans parsed by :meth:`read_results`)
      front.csv, front.json   the front and its summary (hypervolume, reference point)
      front.png               the first objective against each other one
      front/<trial>.pt        weights + genome of every front member
      rungs/<genome>/seed<s>-epoch<e>.pt  multifidelity: a (genome, seed)'s training state
                              and measurements at rung epoch e (promotions continue from it)
      report.md, report.json  the prunable-components report
      driver.json             the driver's pid and processes (for resume)

A file that cannot be read as minsearch wrote it is a :class:`DamagedFile` (a ``UserError``
naming it); :mod:`minsearch.search.integrity` checks a whole folder before a command reads it
and rebuilds what the other records can rebuild.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from minsearch.errors import UserError
from minsearch.objectives.constraint import Constraint
from minsearch.search.file_checks import text_problem
from minsearch.search.results import TrialRecord
from minsearch.search.space import Gene, SpaceConfig
from minsearch.tasks.config import TaskConfig
from minsearch.yamlio import read_yaml

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from minsearch.tracking import TrackingFiles

STUDY_NAME = "minsearch"
BOOLEAN_COLUMNS = ("baseline", "feasible", "pareto", "contender")
DAMAGE_HELP = "docs/search.md, 'A damaged run folder', says what can be rebuilt"
STATUSES = ("created", "running", "finished", "incomplete", "interrupted", "failed")


class CheckpointFiles:
    """File names inside one trial checkpoint (written by the trainable, read by export)."""

    FINAL = "final.json"  # the final result: a restarted trial re-reports it
    FAILED = "failed.json"  # the reason of a failure: a retry re-raises it
    STATE = "state.pt"  # weights, optimiser and epoch of an unfinished trial
    WEIGHTS = "model.pt"  # the trained weights of a finished trial


@dataclass
class Settings:
    """``search.json``: what a search was started with and where it stands."""

    trials: int
    directions: dict[str, str]
    constraint: Constraint
    input_shape: list[int]
    input_dtype: str = "float32"
    created: str = ""
    status: str = "created"  # created | running | finished | incomplete | interrupted | failed
    reason: str = ""  # why the search failed (status failed)
    address: str | None = None
    num_cpus: int | None = None
    tracking_uri: str | None = None
    storage: str | None = None  # Ray Tune's experiment at a URI (None: RUN_DIR/tune)
    parent: dict[str, Any] | None = None  # facts about the parent (trained, or the user's
    # weights with their `as_delivered` accuracy): minsearch.tasks.candidate
    counts: dict[str, int] = field(default_factory=dict)  # trials per state, at the end
    orphans: dict[str, str] = field(default_factory=dict)  # Optuna trial number -> reason

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["constraint"] = self.constraint.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        if "constraint" not in data:
            raise UserError("This run folder was written by an older minsearch (its settings "
                            "hold no `constraint`); start a new search instead of resuming it.")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["constraint"] = Constraint.from_json(data["constraint"])
        return cls(**values)


def describe_delivered(parent: dict[str, Any]) -> str:
    """``as delivered: test accuracy 0.9532 (val 0.9610)`` from the settings' ``parent``."""
    delivered = parent["as_delivered"]
    val = delivered.get("val_accuracy")
    return (f"as delivered: test accuracy {delivered['test_accuracy']:.4f}"
            + (f" (val {val:.4f})" if val is not None else ""))


class DamagedFile(UserError):
    """A file of a run folder that cannot be read as minsearch wrote it: ``path``, what is
    wrong (``problem``) and what the user can do (``remedy``)."""

    def __init__(self, path: Path, problem: str, remedy: str = DAMAGE_HELP) -> None:
        self.path, self.problem, self.remedy = Path(path), problem, remedy
        super().__init__(f"{path} is damaged: {problem}; {remedy}.")


def _ends_open(text: str) -> bool:
    """Whether JSON ``text`` ends inside a string or with a bracket open (cut short)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return in_string or depth > 0


def json_problem(text: str, err: json.JSONDecodeError) -> str:
    """What a JSON parse error says about a file's ``text``: empty, cut short, or invalid."""
    if not text.strip():
        return "it is empty"
    where = f"{err.msg}: line {err.lineno} column {err.colno}"
    if _ends_open(text):
        return f"it is cut short (not valid JSON: {where})"
    return f"it is not valid JSON ({where})"


def read_json(path: Path) -> Any:
    """The parsed JSON file at ``path``; a :class:`DamagedFile` when it is missing, not text
    or not JSON."""
    text, problem = text_problem(path)  # missing, unreadable or empty
    if problem:
        raise DamagedFile(path, problem)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DamagedFile(path, json_problem(text, err)) from None


def _entry(name: str) -> property:
    """A path inside the run folder, as a read-only attribute."""
    return property(lambda self: self.path / name, doc=f"``RUN_DIR/{name}``")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


class RunDir:
    """One search's folder. Building one touches nothing; :meth:`open` checks that a search
    lives there, :meth:`new` that one can start there, :meth:`create` makes the folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())

    @property
    def name(self) -> str:
        return self.path.resolve().name

    # -- paths ---------------------------------------------------------------------------------

    task_yaml = _entry("task.yaml")
    space_yaml = _entry("space.yaml")
    genes_json = _entry("genes.json")
    settings_json = _entry("search.json")
    parent_dir = _entry("parent")
    tune_dir = _entry("tune")
    study_db = _entry("optuna.db")
    records_json = _entry("trials.json")
    results_csv = _entry("results.csv")
    front_csv = _entry("front.csv")
    front_json = _entry("front.json")
    front_png = _entry("front.png")
    front_dir = _entry("front")
    report_md = _entry("report.md")
    report_json = _entry("report.json")
    driver_json = _entry("driver.json")
    rungs_dir = _entry("rungs")

    def rung_checkpoint(self, genome: str, seed: int, epoch: int) -> Path:
        """Where a multi-fidelity job saves ``genome`` (its key: params as sorted JSON)
        trained with ``seed`` for ``epoch`` epochs (model, trainer state, measurements)."""
        import hashlib

        folder = hashlib.sha1(genome.encode()).hexdigest()[:16]
        return self.rungs_dir / folder / f"seed{seed}-epoch{epoch}.pt"

    def export_path(self, trial_id: str) -> Path:
        """Where the weights of front member ``trial_id`` are exported."""
        return self.front_dir / f"{trial_id}.pt"

    @property
    def storage_url(self) -> str:
        """The Optuna study's SQLite storage (also for ``optuna-dashboard``)."""
        return f"sqlite:///{self.study_db.resolve()}"

    @property
    def tracking(self) -> TrackingFiles:
        """Where MLflow state lives (:mod:`minsearch.tracking` takes these paths)."""
        from minsearch.tracking import TrackingFiles

        return TrackingFiles(folder=self.path.resolve(), state=self.path / "mlflow.json",
                             store=self.path / "mlflow.db", artifacts=self.path / "mlartifacts")

    # -- the folder ----------------------------------------------------------------------------

    def is_run(self) -> bool:
        return self.settings_json.is_file()

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """The run folder at ``path``; a UserError when no search was started there."""
        run = cls(path)
        if not run.is_run():
            raise UserError(f"{run.path} is not a minsearch run folder (no "
                            f"{run.settings_json.name}); start one with `minsearch search TASK "
                            f"--space SPACE --out {run.path}`.")
        return run

    @classmethod
    def new(cls, path: str | Path) -> RunDir:
        """A folder a new search can use (checked, not created): absent, or a folder that
        holds no search and that no driver holds (:mod:`minsearch.search.lock`)."""
        from minsearch.search.lock import check_free

        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise UserError(f"--out {str(run.path)!r} is a file; a run folder must be a new or "
                            f"existing folder; choose another --out.")
        if run.path.is_dir():
            check_free(run.path)
        above = next((p for p in run.path.absolute().parents if p.exists()), None)
        if above is not None and not above.is_dir():
            raise UserError(f"--out {str(run.path)!r} lies inside {str(above)!r}, which is a "
                            f"file; choose another --out.")
        if run.is_run():
            raise UserError(f"{run.path} already holds a search; continue it with `minsearch "
                            f"resume {run.path}` or choose another --out.")
        return run

    @staticmethod
    def default_path(task_name: str) -> Path:
        return Path("runs") / f"{task_name}-{time.strftime('%Y%m%d-%H%M%S')}"

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    # -- inputs --------------------------------------------------------------------------------

    def write_inputs(self, task: TaskConfig, space: SpaceConfig, genes: list[Gene]) -> None:
        _atomic_write(self.task_yaml, yaml.safe_dump(task.to_flat(), sort_keys=False))
        _atomic_write(self.space_yaml, yaml.safe_dump(space.to_json(), sort_keys=False))
        _atomic_write(self.genes_json, json.dumps([g.to_json() for g in genes], indent=1))

    def read_task(self) -> TaskConfig:
        data = read_yaml(self.task_yaml, "run folder task file")
        try:
            return TaskConfig.from_flat(data)
        except UserError as err:  # the folder's own copy: damaged or edited
            raise DamagedFile(self.task_yaml, f"it is not a valid task ({err})") from None

    def read_space(self) -> SpaceConfig:
        data = read_yaml(self.space_yaml, "run folder space file")
        try:
            return SpaceConfig.from_json(data)
        except UserError as err:
            raise DamagedFile(self.space_yaml, f"it is not a valid space ({err})") from None

    def read_genes(self) -> list[Gene]:
        return [Gene.from_json(g) for g in read_json(self.genes_json)]

    def write_settings(self, settings: Settings) -> None:
        _atomic_write(self.settings_json, json.dumps(settings.to_json(), indent=2))

    def read_settings(self) -> Settings:
        return Settings.from_json(read_json(self.settings_json))

    # -- trials and results --------------------------------------------------------------------

    def write_records(self, records: list[TrialRecord]) -> None:
        _atomic_write(self.records_json, json.dumps([asdict(r) for r in records], indent=1))

    def read_records(self) -> list[TrialRecord]:
        if not self.records_json.is_file():
            return []
        return [TrialRecord(**r) for r in read_json(self.records_json)]

    def write_results(self, frame: pd.DataFrame, summary: dict[str, Any]) -> None:
        """``results.csv`` (every trial), ``front.csv`` (front members, best first on the
        first objective) and ``front.json`` (``summary``)."""
        from minsearch.search.results import sort_front

        _atomic_write(self.results_csv, frame.to_csv(index=False))
        front = frame[frame["pareto"]] if not frame.empty else frame
        front = sort_front(front, summary.get("directions", {}))
        _atomic_write(self.front_csv, front.to_csv(index=False))
        _atomic_write(self.front_json, json.dumps(summary, indent=2, default=float))

    def read_results(self) -> pd.DataFrame:
        """``results.csv`` with ``baseline``, ``feasible``, ``pareto`` and ``contender`` as
        booleans and ``trial_id`` as text."""
        import pandas as pd

        if not self.results_csv.is_file():
            raise UserError(f"{self.results_csv} does not exist: is {self.path} a minsearch run "
                            f"folder whose search has started?")
        try:
            frame = pd.read_csv(self.results_csv, keep_default_na=False, na_values=[""],
                                dtype={"trial_id": str})
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
            raise DamagedFile(self.results_csv, f"it is not a readable table ({err})".replace(
                "\n", " "), "`minsearch resume` rewrites it from Ray's experiment state") from None
        for column in BOOLEAN_COLUMNS:
            if column in frame:
                frame[column] = frame[column].astype(str).str.lower() == "true"
        return frame

    def read_front_summary(self) -> dict[str, Any]:
        if not self.front_json.is_file():
            raise UserError(f"{self.front_json} does not exist: the search in {self.path} has "
                            f"not finished a trial yet.")
        return read_json(self.front_json)

    def write_report(self, report: dict[str, Any], markdown: str) -> Path:
        """``report.json`` and ``report.md``; returns the markdown's path."""
        _atomic_write(self.report_json, json.dumps(report, indent=1, default=float))
        _atomic_write(self.report_md, markdown)
        return self.report_md

    # -- the study -----------------------------------------------------------------------------

    def load_study(self) -> optuna.Study | None:
        """The run's Optuna study, or None before the searcher created it."""
        import optuna

        from minsearch.search.integrity import study_problem

        if not self.study_db.is_file():
            return None
        problem = study_problem(self)  # read-only: Optuna would write into a damaged file
        if problem:
            raise DamagedFile(self.study_db, problem)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        return optuna.load_study(study_name=STUDY_NAME, storage=self.storage_url)
