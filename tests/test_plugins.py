"""Plugins: modules named in a space file, imported before anything else; a module that cannot
be imported is a one-line user error naming it."""

from __future__ import annotations

import sys

import pytest

from minsearch.errors import UserError
from minsearch.plugins import load_plugins
from minsearch.search.hooks import trial_hooks
from minsearch.search.space import SpaceConfig

GENES = [{"kind": "norm", "options": ["keep"]}]


def test_plugins_are_imported_in_order():
    modules = load_plugins(["json", "tests.search.plugins.trial_log"])
    assert [m.__name__ for m in modules] == ["json", "tests.search.plugins.trial_log"]


@pytest.mark.parametrize("name, message", [
    ("tests.search.plugins.no_such_module", r"Plugin 'tests\.search\.plugins\.no_such_module' "
                                            r"cannot be imported \(No module named"),
    ("nonexistent_package_xyz", r"Plugin 'nonexistent_package_xyz' cannot be imported"),
    ("", "A plugin is a module name"),
    (3, "A plugin is a module name"),
])
def test_a_bad_plugin_is_a_user_error(name, message):
    with pytest.raises(UserError, match=message):
        load_plugins([name])


def test_a_space_file_loads_its_plugins_before_its_genes():
    space = SpaceConfig.from_json({"plugins": ["tests.search.plugins.fail_when"],
                                   "genes": GENES})
    assert space.plugins == ("tests.search.plugins.fail_when",)
    assert "tests.search.plugins.fail_when" in sys.modules
    assert any(h.__module__ == "tests.search.plugins.fail_when" for h in trial_hooks())
    with pytest.raises(UserError, match="Plugin 'nope_xyz' cannot be imported"):
        SpaceConfig.from_json({"plugins": ["nope_xyz"], "genes": GENES})
    with pytest.raises(UserError, match="`plugins` must be a list"):
        SpaceConfig.from_json({"plugins": "tests.search.plugins.fail_when", "genes": GENES})
