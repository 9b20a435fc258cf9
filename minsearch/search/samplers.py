"""Optuna samplers by name, with their parameters settable from the space file.

:data:`SAMPLERS` maps the name a space file gives (``sampler: tpe``) to a sampler class. The
space file may set any of the class's constructor parameters that a YAML scalar can give
(found with :func:`inspect.signature`)::

    sampler: {name: tpe, n_startup_trials: 4, constant_liar: false}

What the search sets itself is not settable there: ``seed`` (the space's ``seed``) and
``search_space`` (the genes). Defaults that differ from Optuna's: NSGA-II's
``population_size`` is the space's ``population`` (about trials / 2); TPE is multivariate
with ``n_startup_trials`` = trials / 4 (at least 2), as is GP's. Constraints reach NSGA-II, TPE
and GP through each trial's stored constraint values (``Trial.set_constraint``), never a
``constraints_func``.

A new sampler is one line in :data:`SAMPLERS` (plus a defaults entry when it needs one).
"""

from __future__ import annotations

import inspect
import itertools
import random
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler

from minsearch.errors import UserError

if TYPE_CHECKING:
    from minsearch.search.space import Gene, SpaceConfig

GRID_LIMIT = 1_000_000  # a grid enumerates its points: larger spaces need another sampler
SET_BY_SEARCH = ("seed", "search_space", "constraints_func")
_SCALAR_WORDS = {"int", "float", "bool", "str", "None"}


class GenomeGridSampler(BaseSampler):
    """Every point of a categorical grid once, in a seeded order, before any point twice.

    Unlike Optuna's ``GridSampler``, points are chosen from the study's own trials: a point
    that any trial already holds (the enqueued baseline, a replacement enqueued by the
    searcher) is never proposed again, so a grid of N points takes exactly N trials, the
    baseline among them. Once every point is taken it samples at random (the searcher then
    allows repeats)."""

    def __init__(self, search_space: Mapping[str, Sequence[Any]], seed: int | None = None):
        self._names = sorted(search_space)
        self._choices = {n: list(search_space[n]) for n in self._names}
        size = 1
        for name in self._names:
            size *= len(self._choices[name])
        if size > GRID_LIMIT:
            raise UserError(f"`sampler: grid` enumerates every genome, but this space has "
                            f"{size:,} (at most {GRID_LIMIT:,}); use nsga2, tpe or random.")
        self._order = list(itertools.product(*self._choices.values()))
        self._rng = random.Random(seed)
        self._rng.shuffle(self._order)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: optuna.trial.FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return {n: CategoricalDistribution(self._choices[n]) for n in self._names}

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if set(search_space) != set(self._names):
            return {}
        taken = {tuple(t.params.get(n) for n in self._names)
                 for t in study.get_trials(deepcopy=False) if t.number != trial.number}
        for point in self._order:
            if point not in taken:
                return dict(zip(self._names, point, strict=True))
        return {}  # every point taken: independent, random

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                           param_name: str, param_distribution: BaseDistribution) -> Any:
        assert isinstance(param_distribution, CategoricalDistribution), param_distribution
        return self._rng.choice(list(param_distribution.choices))


SAMPLERS: dict[str, type[BaseSampler]] = {
    "nsga2": optuna.samplers.NSGAIISampler,
    "tpe": optuna.samplers.TPESampler,
    "gp": optuna.samplers.GPSampler,
    "random": optuna.samplers.RandomSampler,
    "grid": GenomeGridSampler,
}


def settable_parameters(name: str) -> tuple[str, ...]:
    """The constructor parameters of sampler ``name`` that a space file may set: those whose
    type a YAML scalar can give (int, float, bool, str), less what the search sets itself."""
    cls = sampler_class(name)
    settable = []
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self" or param.name in SET_BY_SEARCH or param.kind in (
                param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = param.annotation
        words = set(re.findall(r"[A-Za-z_]\w*", annotation if isinstance(annotation, str)
                               else getattr(annotation, "__name__", str(annotation))))
        if words and words <= _SCALAR_WORDS:
            settable.append(param.name)
    return tuple(settable)


def sampler_class(name: str) -> type[BaseSampler]:
    if name not in SAMPLERS:
        raise UserError(f"`sampler` must be one of {', '.join(SAMPLERS)}, but got {name!r}.")
    return SAMPLERS[name]


def check_sampler(name: str, params: Mapping[str, Any]) -> None:
    """A UserError when ``name`` is unknown or ``params`` holds a parameter it does not take."""
    settable = settable_parameters(name)
    unknown = sorted(set(params) - set(settable))
    if unknown:
        accepted = ", ".join(settable) or "none"
        raise UserError(f"Sampler {name!r} takes no parameter(s) {', '.join(unknown)} from the "
                        f"space file; it accepts: {accepted} (`seed` is the space's `seed`).")


def _defaults(name: str, space: SpaceConfig, genes: list[Gene]) -> dict[str, Any]:
    startup = max(2, space.trials // 4)
    return {"nsga2": {"population_size": space.population_size},
            "tpe": {"multivariate": True, "n_startup_trials": startup},
            "gp": {"n_startup_trials": startup},
            "grid": {"search_space": {g.name: list(g.labels) for g in genes}},
            }.get(name, {})


def make_sampler(space: SpaceConfig, genes: list[Gene]) -> BaseSampler:
    """The sampler the space names, seeded with the space's ``seed``, with the space's
    parameters over minsearch's defaults."""
    check_sampler(space.sampler, space.sampler_params)
    kwargs = {**_defaults(space.sampler, space, genes), **space.sampler_params,
              "seed": space.seed}
    try:
        return SAMPLERS[space.sampler](**kwargs)
    except (TypeError, ValueError) as err:  # a value of the user's the sampler refuses
        if isinstance(err, UserError):
            raise
        raise UserError(f"Sampler {space.sampler!r} refuses its parameters "
                        f"{dict(space.sampler_params)}: {err}") from None
