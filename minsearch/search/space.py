"""Search spaces: which genes exist, their options, and how sites are tied into genes.

A space file (``search_spaces/*.yaml``) lists gene specs and the controller settings::

    sampler: nsga2            # nsga2 | tpe | gp | random | grid, or {name: tpe, param: value}
    trials: 12
    plugins: [mypackage.kinds]  # optional: modules imported before anything else (see below)
    genes:
      - kind: norm            # every norm site ...
        tie: kind             # ... shares one gene (kind | stage | block | site)
        options: [keep, identity, rmsnorm, dyt]
      - kind: residual
        tie: block            # one gene per block (Site.block), e.g. residual@blocks.0
        sites: "blocks\\..*"  # optional: only sites whose name fully matches this regex
        options: [keep, rezero, {name: layerscale, init: 0.1}]

:func:`resolve_genes` checks a space against ``find_sites`` of the task's model before anything
is trained: an unknown option, an option that does not apply at a site, a pattern that
matches no site, or a site in two genes (a ``pair`` site counts its norm and its residual as
its own) is a :class:`~minsearch.errors.UserError` that says which and how to fix it.

``plugins`` are importable modules (:func:`minsearch.plugins.load_plugins`): reading a space
imports them first, so a site kind, an option or a trial hook they register is known when the
genes are checked; every trial worker imports them again before it builds its candidate.
``sampler`` parameters are checked against the sampler's constructor
(:mod:`minsearch.search.samplers`). ``strategy: multifidelity`` with ``rungs``, ``reduction``
and ``budget_epochs`` runs successive halving instead of one trial per genome
(:mod:`minsearch.search.multifidelity`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minsearch.errors import UserError
from minsearch.plugins import load_plugins
from minsearch.sites.kind import get_kind, parts
from minsearch.sites.site import Discovery, Site
from minsearch.yamlio import read_yaml

TIES = ("kind", "stage", "block", "site")
KEEP = "keep"


def option_label(spec: str | dict[str, Any]) -> str:
    """A short, unique, readable name for an option spec: ``dyt`` or ``dyt(alpha_init=0.5)``."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        args = ",".join(f"{k}={spec[k]}" for k in sorted(spec) if k != "name")
        return f"{spec['name']}({args})" if args else spec["name"]
    raise UserError(f"An option must be a name such as 'dyt' or a mapping with 'name' (and "
                    f"parameters), but got {spec!r}.")


@dataclass(frozen=True)
class GeneSpec:
    kind: str
    options: tuple[Any, ...]
    tie: str = "kind"
    sites: str | None = None  # regex, fully matched against site names
    name: str | None = None  # prefix of the gene names (default: the kind)
    exclude: str | None = None  # regex: sites whose name it fully matches are left out

    def __post_init__(self) -> None:
        get_kind(self.kind)  # an unknown kind: one line with the known ones
        if self.tie not in TIES:
            raise UserError(f"`tie` must be one of {', '.join(TIES)}, but got {self.tie!r} "
                            f"(for the {self.kind} gene).")
        if not isinstance(self.options, (list, tuple)) or not self.options:
            raise UserError(f"The {self.kind} gene needs a non-empty `options` list, e.g. "
                            f"[keep, identity], but got {self.options!r}.")
        options = tuple(self.options)
        if KEEP not in options:  # the baseline (everything kept) must be in the space
            options = (KEEP, *options)
        object.__setattr__(self, "options", options)
        labels = [option_label(o) for o in options]
        if len(set(labels)) != len(labels):
            raise UserError(f"The {self.kind} gene lists an option twice: {labels}.")
        for key in ("sites", "exclude"):
            pattern = getattr(self, key)
            if pattern is None:
                continue
            try:
                re.compile(pattern)
            except re.error as err:
                raise UserError(f"`{key}: {pattern!r}` of the {self.kind} gene is not a "
                                f"valid regex ({err}).") from None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(option_label(o) for o in self.options)


@dataclass(frozen=True)
class SpaceConfig:
    genes: tuple[GeneSpec, ...]
    sampler: str = "nsga2"
    trials: int = 12
    seed: int = 0
    population: int | None = None  # NSGA-II population (default: about trials / 2, 4..50)
    asha_grace_epochs: int | None = None  # early-stop weak trials on val accuracy (ASHA)
    sampler_params: dict[str, Any] = field(default_factory=dict)  # the sampler's own keys
    plugins: tuple[str, ...] = ()  # modules imported before the genes are resolved
    strategy: str = "default"  # default (one trial per genome) | multifidelity
    rungs: tuple[Any, ...] = ()  # multifidelity: Rung(epochs, seeds, slack) per rung
    reduction: float = 3.0  # multifidelity: 1/reduction of a rung may go up
    budget_epochs: int | None = None  # multifidelity: epoch-trainings the search may spend

    def __post_init__(self) -> None:
        from minsearch.search.multifidelity import check_strategy
        from minsearch.search.samplers import check_sampler

        if not isinstance(self.sampler, str):
            raise UserError(f"`sampler` must be a name such as 'tpe' or a mapping "
                            f"{{name: tpe, ...}}, but got {self.sampler!r}.")
        check_sampler(self.sampler, self.sampler_params)
        object.__setattr__(self, "plugins", tuple(self.plugins))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise UserError(f"`seed` must be an int, but got {self.seed!r}.")
        if not isinstance(self.trials, int) or self.trials < 1:
            raise UserError(f"`trials` must be an int >= 1, but got {self.trials!r}.")
        if not self.genes:
            raise UserError("A space needs at least one gene under `genes:`.")
        if self.population is not None and self.population < 2:
            raise UserError(f"`population` must be >= 2, but got {self.population}.")
        if self.asha_grace_epochs is not None and self.asha_grace_epochs < 1:
            raise UserError(f"`asha_grace_epochs` must be >= 1 or null, but got "
                            f"{self.asha_grace_epochs}.")
        check_strategy(self)

    @property
    def population_size(self) -> int:
        return self.population or max(4, min(50, self.trials // 2))

    def to_json(self) -> dict[str, Any]:
        from minsearch.search.multifidelity import strategy_json

        sampler = {"name": self.sampler, **self.sampler_params} if self.sampler_params else (
            self.sampler)
        return {"sampler": sampler, "trials": self.trials, "seed": self.seed,
                **({"plugins": list(self.plugins)} if self.plugins else {}),
                "population": self.population, "asha_grace_epochs": self.asha_grace_epochs,
                "genes": [{"kind": g.kind, "tie": g.tie, "options": list(g.options),
                           **({"sites": g.sites} if g.sites else {}),
                           **({"name": g.name} if g.name else {})} for g in self.genes],
                **strategy_json(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpaceConfig:
        from minsearch.search.multifidelity import STRATEGY_KEYS, parse_strategy

        if not isinstance(data, dict):
            raise UserError(f"A space must be a mapping, but got {type(data).__name__}.")
        known = {"genes", "sampler", "trials", "seed", "population", "asha_grace_epochs",
                 "plugins", *STRATEGY_KEYS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"Unknown space key(s) {unknown}; known: {', '.join(sorted(known))}.")
        plugins = data.get("plugins") or []
        if not isinstance(plugins, list):
            raise UserError(f"`plugins` must be a list of module names, but got {plugins!r}.")
        load_plugins(plugins)  # before the genes: a plugin may register a site kind
        genes = data.get("genes") or []
        if not isinstance(genes, list):
            raise UserError(f"`genes` must be a list of gene specs, but got {genes!r}.")
        specs = []
        for gene in genes:
            if not isinstance(gene, dict) or "kind" not in gene:
                raise UserError(f"Each gene must be a mapping with `kind` and `options`, but "
                                f"got {gene!r}.")
            extra = sorted(set(gene) - {"kind", "options", "tie", "sites", "exclude", "name"})
            if extra:
                raise UserError(f"Unknown gene key(s) {extra} in {gene!r}; known: kind, "
                                f"options, tie, sites, exclude, name.")
            specs.append(GeneSpec(kind=gene["kind"], options=gene.get("options") or (),
                                  tie=gene.get("tie", "kind"), sites=gene.get("sites"),
                                  name=gene.get("name"), exclude=gene.get("exclude")))
        rest = {k: v for k, v in data.items() if k not in ("genes", "sampler", "plugins")}
        sampler = data.get("sampler", "nsga2")
        params: dict[str, Any] = {}
        if isinstance(sampler, dict):
            if not isinstance(sampler.get("name"), str):
                raise UserError(f"A `sampler` mapping needs `name` (e.g. {{name: tpe, "
                                f"n_startup_trials: 4}}), but got {sampler!r}.")
            params = {k: v for k, v in sampler.items() if k != "name"}
            sampler = sampler["name"]
        rest.update(parse_strategy(rest))
        return cls(genes=tuple(specs), sampler=sampler, sampler_params=params,
                   plugins=tuple(plugins), **rest)


def load_space(path: str | Path) -> SpaceConfig:
    """Read and check a space file (plugins are imported first); mistakes are one-line
    :class:`UserError` s that start with the file's path."""
    data = read_yaml(path, "space file")
    try:
        return SpaceConfig.from_json({} if data is None else data)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None


@dataclass(frozen=True)
class Gene:
    """One searched variable: a set of tied sites and the option labels they choose from."""

    name: str
    kind: str
    sites: tuple[str, ...]
    labels: tuple[str, ...]
    specs: dict[str, Any] = field(compare=False, hash=False)  # label -> option spec

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "sites": list(self.sites),
                "options": {label: self.specs[label] for label in self.labels}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Gene:
        return cls(data["name"], data["kind"], tuple(data["sites"]), tuple(data["options"]),
                   dict(data["options"]))


def _group_key(site: Site, tie: str) -> str:
    return {"kind": "", "stage": site.stage, "block": site.block, "site": site.name}[tie]


def resolve_genes(space: SpaceConfig, discovery: Discovery) -> list[Gene]:
    """Turn gene specs into concrete genes over the model's sites, validating everything."""
    from minsearch.surgery import Genome

    genes: list[Gene] = []
    owner: dict[str, str] = {}
    for spec in space.genes:
        candidates = discovery.of_kind(spec.kind)
        if not candidates:
            found = ", ".join(f"{k}: {n}" for k, n in discovery.counts().items() if n)
            raise UserError(f"The space has a {spec.kind} gene but the model has no {spec.kind} "
                            f"sites (found {found or 'none'}); remove that gene.")
        if spec.sites is not None:
            pattern = re.compile(spec.sites)
            candidates = [s for s in candidates if pattern.fullmatch(s.name)]
            if not candidates:
                sample = ", ".join(s.name for s in discovery.of_kind(spec.kind)[:4])
                raise UserError(f"`sites: {spec.sites!r}` of the {spec.kind} gene matches no "
                                f"{spec.kind} site; they look like: {sample}.")
        if spec.exclude is not None:
            pattern = re.compile(spec.exclude)
            candidates = [s for s in candidates if not pattern.fullmatch(s.name)]
            if not candidates:
                raise UserError(f"`exclude: {spec.exclude!r}` of the {spec.kind} gene leaves "
                                f"no {spec.kind} site; narrow the pattern.")
        groups: dict[str, list[str]] = {}
        for site in candidates:
            groups.setdefault(_group_key(site, spec.tie), []).append(site.name)
        prefix = spec.name or spec.kind
        by_name = {s.name: s for s in candidates}
        for key, names in groups.items():
            gene = Gene(f"{prefix}@{key}" if key else prefix, spec.kind, tuple(names),
                        spec.labels, dict(zip(spec.labels, spec.options, strict=True)))
            for site_name in names:
                for part in parts(by_name[site_name]):
                    mine = gene.name if part == site_name else f"{gene.name} via {site_name}"
                    if part in owner:
                        raise UserError(f"Site {part} is in two genes ({owner[part]} and "
                                        f"{mine}); narrow one with `sites:`.")
                    owner[part] = mine
            if any(g.name == gene.name for g in genes):
                raise UserError(f"Two genes are named {gene.name!r}; give one a `name:`.")
            for label in gene.labels:  # every option must apply at every site of the gene
                try:
                    Genome.from_json(genome_rules([gene], {gene.name: label})).resolve(discovery)
                except ValueError as err:
                    raise UserError(f"Gene {gene.name!r}, option {label!r}: {err} Remove the "
                                    f"option, or narrow the gene with `sites:`.") from None
            genes.append(gene)
    return genes


def unavailable_options(genes: list[Gene], device: Any) -> list[str]:
    """``"gene option: why"`` for every option that cannot run on ``device`` (a torch device),
    e.g. fp8 dynamic activations on a CPU (:meth:`Option.unavailable_on`)."""
    from minsearch.catalog import option_of, parse_option

    problems = []
    for gene in genes:
        for label in gene.labels:
            config = parse_option(gene.kind, gene.specs[label])
            why = option_of(config).unavailable_on(config, device)
            if why:
                problems.append(f"gene {gene.name!r}, option {label!r}: {why}")
    return problems


def genome_rules(genes: list[Gene], params: dict[str, str]) -> dict[str, Any]:
    """Sampled labels ``{gene name: label}`` -> a genome ``{site name: option spec}``.
    Kept sites are left out (a genome keeps what it does not name)."""
    rules: dict[str, Any] = {}
    for gene in genes:
        label = params.get(gene.name, KEEP)
        if label not in gene.specs:
            raise UserError(f"Gene {gene.name!r} has no option {label!r}; options: "
                            f"{', '.join(gene.labels)}.")
        if label != KEEP:
            rules.update({site: gene.specs[label] for site in gene.sites})
    return rules


def baseline_params(genes: list[Gene]) -> dict[str, str]:
    """The point where every gene keeps its sites as they are."""
    return {gene.name: KEEP for gene in genes}
