"""Search spaces: loading, tying genes, and validation against the model's sites."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from minsearch.models import build_model
from minsearch.search.space import (
    GeneSpec,
    SpaceConfig,
    baseline_params,
    genome_rules,
    load_space,
    option_label,
    resolve_genes,
)
from minsearch.sites import Discovery, Site, find_sites
from minsearch.tasks.config import load_task
from tests.search.conftest import VIT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vit_sites():
    return find_sites(build_model(VIT), torch.zeros(2, 1, 8, 8))


def space(*genes: dict, **kw) -> SpaceConfig:
    return SpaceConfig.from_json({"genes": list(genes), **kw})


@pytest.mark.parametrize("name", ["digits_vit", "digits_cnn"])
def test_shipped_spaces_validate_against_their_task_model(name):
    task = load_task(ROOT / "tasks" / f"{name}.yaml")
    sp = load_space(ROOT / "search_spaces" / f"{name}.yaml")
    model = build_model(task.model)
    genes = resolve_genes(sp, find_sites(model, torch.zeros(2, 1, 8, 8)))
    assert len(genes) >= 3
    assert all(g.labels[0] == "keep" for g in genes)


def test_smoke_space_validates_on_both_tasks():
    sp = load_space(ROOT / "search_spaces" / "smoke.yaml")
    for name in ("digits_vit", "digits_cnn"):
        model = build_model(load_task(ROOT / "tasks" / f"{name}.yaml").model)
        assert resolve_genes(sp, find_sites(model, torch.zeros(2, 1, 8, 8)))


@pytest.mark.parametrize("tie, expected", [
    ("kind", ["residual"]),
    ("block", ["residual@blocks.0", "residual@blocks.1"]),
    ("stage", ["residual@blocks"]),
    ("site", ["residual@blocks.0.residual_0", "residual@blocks.0.residual_1",
              "residual@blocks.1.residual_0", "residual@blocks.1.residual_1"]),
])
def test_tie_modes_group_sites_by_kind_block_stage_or_site(vit_sites, tie, expected):
    genes = resolve_genes(space({"kind": "residual", "tie": tie, "options": ["keep", "rezero"]}),
                          vit_sites)
    assert sorted(g.name for g in genes) == expected
    assert sum(len(g.sites) for g in genes) == 4  # every residual site, each in one gene


def test_sites_regex_narrows_and_name_prefixes(vit_sites):
    genes = resolve_genes(space(
        {"kind": "norm", "sites": r"blocks\..*", "options": ["identity"]},
        {"kind": "norm", "name": "final", "sites": "norm", "options": ["dyt"]}), vit_sites)
    assert [g.name for g in genes] == ["norm", "final"]
    assert len(genes[0].sites) == 4 and genes[1].sites == ("norm",)


def test_keep_is_added_and_baseline_keeps_everything(vit_sites):
    genes = resolve_genes(space({"kind": "norm", "options": ["identity", "dyt"]}), vit_sites)
    assert genes[0].labels == ("keep", "identity", "dyt")
    assert genome_rules(genes, baseline_params(genes)) == {}


def test_genome_rules_name_every_site_of_the_gene(vit_sites):
    genes = resolve_genes(space(
        {"kind": "norm", "options": [{"name": "dyt", "alpha_init": 0.5}]},
        {"kind": "activation", "options": ["relu"]}), vit_sites)
    label = option_label({"name": "dyt", "alpha_init": 0.5})
    assert label == "dyt(alpha_init=0.5)"
    rules = genome_rules(genes, {"norm": label, "activation": "keep"})
    assert set(rules) == set(genes[0].sites)
    assert all(v == {"name": "dyt", "alpha_init": 0.5} for v in rules.values())
    with pytest.raises(ValueError, match="has no option 'gelu'"):
        genome_rules(genes, {"activation": "gelu"})


def test_unknown_option_is_an_error_before_training(vit_sites):
    with pytest.raises(ValueError, match=r"Unknown option 'dty' for norm; known: .*dyt"):
        resolve_genes(space({"kind": "norm", "options": ["dty"]}), vit_sites)


def test_pattern_matching_no_site_is_an_error(vit_sites):
    with pytest.raises(ValueError, match=r"matches no norm site; they look like: blocks\.0"):
        resolve_genes(space({"kind": "norm", "sites": "encoder.*", "options": ["dyt"]}),
                      vit_sites)


def test_kind_absent_from_model_is_an_error():
    model = build_model("timm:resnet18?in_chans=1&num_classes=10&layers=[1,1,1,1]"
                        "&channels=[8,8,8,8]&stem_width=8")
    sites = find_sites(model, torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="no attention sites"):
        resolve_genes(space({"kind": "attention", "options": ["bf16"]}), sites)


def test_option_that_does_not_apply_names_the_gene_and_fix():
    sites = Discovery([Site("blocks.0.norm", "norm", ("keep", "identity"), "LayerNorm",
                            "blocks.0.norm")])
    with pytest.raises(ValueError, match=r"Gene 'norm', option 'dyt': Option 'dyt' cannot be "
                                         r"used at blocks\.0\.norm.*Remove the option, or "
                                         r"narrow the gene with `sites:`"):
        resolve_genes(space({"kind": "norm", "options": ["dyt"]}), sites)


def test_a_site_in_two_genes_is_an_error(vit_sites):
    with pytest.raises(ValueError, match="is in two genes"):
        resolve_genes(space({"kind": "norm", "options": ["dyt"]},
                            {"kind": "norm", "name": "again", "sites": "norm",
                             "options": ["identity"]}), vit_sites)


NORM = {"genes": [{"kind": "norm", "options": ["dyt"]}]}
MF = {**NORM, "strategy": "multifidelity", "rungs": [{"epochs": 1, "seeds": 1}]}


@pytest.mark.parametrize("bad, message", [
    ({"genes": [{"kind": "nrom", "options": ["keep"]}]}, "Did you mean 'norm'"),
    ({"genes": [{"kind": "norm", "tie": "layer", "options": ["keep"]}]}, "`tie` must be one of"),
    ({"genes": [{"kind": "norm", "options": []}]}, "non-empty `options`"),
    ({"genes": [{"kind": "norm", "options": ["dyt", "dyt"]}]}, "lists an option twice"),
    ({"genes": [{"kind": "norm", "options": ["dyt"], "sites": "("}]}, "not a valid regex"),
    ({"genes": [{"kind": "norm", "options": ["dyt"]}], "sampler": "cmaes"}, "`sampler` must"),
    ({"genes": [{"kind": "norm", "options": ["dyt"]}], "trials": 0}, "`trials` must"),
    ({"genes": [], "trials": 3}, "at least one gene"),
    ({"genes": [{"kind": "norm", "options": ["dyt"]}], "trails": 3}, "Unknown space key"),
    ({**NORM, "strategy": "halving"}, "`strategy` must be one of default, multifidelity"),
    ({**NORM, "rungs": [{"epochs": 1}]}, "`rungs` is a key of `strategy: multifidelity`"),
    ({**NORM, "strategy": "multifidelity"}, "needs `rungs`"),
    ({**MF, "rungs": [{"epochs": 0}]}, "`epochs` must be an int >= 1, but got 0"),
    ({**MF, "rungs": [{"epochs": 1, "seed": 2}]}, r"Unknown rung key\(s\) \['seed'\]"),
    ({**MF, "rungs": {"epochs": 1}}, "`rungs` must be a list"),
    ({**MF, "reduction": 1}, "`reduction` must be a number > 1"),
    ({**MF, "budget_epochs": 0}, "`budget_epochs` must be an int >= 1"),
    ({**MF, "asha_grace_epochs": 1}, "both stop weak candidates early"),
])
def test_space_file_mistakes_say_what_and_how(bad, message):
    with pytest.raises(ValueError, match=message):
        SpaceConfig.from_json(bad)


def test_space_round_trips_through_json():
    sp = space({"kind": "norm", "tie": "block", "options": ["keep", {"name": "dyt"}],
                "sites": "blocks.*"}, sampler="tpe", trials=7)
    assert SpaceConfig.from_json(sp.to_json()) == sp


def test_a_multifidelity_space_round_trips_and_is_checked_against_the_task():
    from minsearch.errors import UserError
    from minsearch.objectives.constraint import Constraint
    from minsearch.search.multifidelity import halving_config
    from minsearch.tasks.config import TaskConfig
    from tests.search.conftest import TINY_TASK

    sp = SpaceConfig.from_json({**MF, "reduction": 2, "budget_epochs": 30, "rungs": [
        {"epochs": 1, "seeds": 1, "slack": 0.05}, {"epochs": 2, "seeds": 2}]})
    assert SpaceConfig.from_json(sp.to_json()) == sp
    assert "strategy" not in space({"kind": "norm", "options": ["dyt"]}).to_json()
    task = TaskConfig.from_flat(dict(TINY_TASK, seeds=2, epochs=2))
    config = halving_config(sp, task, {"accuracy": "max"}, Constraint.from_task(task))
    assert config.seeds == (0, 1) and config.reduction == 2 and config.rungs[0].slack == 0.05
    for bad, message in [(dict(TINY_TASK, seeds=2, epochs=3), "make the last rung's `epochs: 3`"),
                         (dict(TINY_TASK, seeds=1, epochs=2), "uses 2 seeds but only 1")]:
        task = TaskConfig.from_flat(bad)
        with pytest.raises(UserError, match=message):
            halving_config(sp, task, {"accuracy": "max"}, Constraint.from_task(task))


def test_gene_spec_requires_known_kind():
    with pytest.raises(ValueError, match="not a site kind"):  # (a plugin may add `dropout`)
        GeneSpec(kind="no_such_kind", options=("keep",))


def test_the_shipped_digits_vit_space_is_multifidelity_within_the_old_compute():
    """The README's search: halving-tpe (docs/search-quality.md) with rungs that fit the task,
    spending at most the 16 genomes x 3 seeds x 8 epochs the NSGA-II search spent."""
    from minsearch.objectives.constraint import Constraint, directions
    from minsearch.search.multifidelity import halving_config

    task = load_task(ROOT / "tasks" / "digits_vit.yaml")
    sp = load_space(ROOT / "search_spaces" / "digits_vit.yaml")
    config = halving_config(sp, task, directions(task.measure.objectives),
                            Constraint.from_task(task))
    assert (sp.strategy, sp.sampler, sp.reduction) == ("multifidelity", "tpe", 3)
    assert [(r.epochs, r.seeds, r.slack) for r in config.rungs] == [
        (1, 1, 0.2), (2, 1, 0.1), (8, 3, 0.0)]
    assert sp.budget_epochs <= 16 * 3 * 8 and config.seeds == (0, 1, 2)
