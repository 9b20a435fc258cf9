"""Option configs: *what* a gene option does, as a small validated dataclass.

Each registered option has one config class. Configs round-trip through JSON with a type tag
(``"norm/dyt"``) and a version, which is what gets logged and stored, so that a candidate can be
rebuilt exactly from its logged genome.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from minsearch.errors import UserError


@dataclasses.dataclass(frozen=True)
class OptionConfig:
    """Base class of option configs.

    Subclasses are frozen dataclasses with class variables ``kind`` (a site kind) and
    ``name`` (the option's registry name). They validate their fields in ``__post_init__`` and
    raise ``UserError`` naming the rule, the value and the fix.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    version: ClassVar[int] = 1

    @property
    def type_tag(self) -> str:
        return f"{self.kind}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_tag, "version": self.version, **dataclasses.asdict(self)}

    @staticmethod
    def from_json(data: dict[str, Any]) -> OptionConfig:
        """Rebuild a config from :meth:`to_json` output (any registered option)."""
        from minsearch.catalog.registry import get_option

        if not isinstance(data, dict) or "type" not in data:
            raise UserError(f"An option config must be a mapping with a 'type' key such as "
                            f"'norm/dyt', but got {data!r}.")
        kind, _, name = str(data["type"]).partition("/")
        option = get_option(kind, name)
        version = data.get("version", option.config_cls.version)
        if version != option.config_cls.version:
            raise UserError(f"Option {data['type']!r} is stored at version {version}, but this "
                            f"minsearch reads version {option.config_cls.version}; re-run the "
                            f"search or convert the genome.")
        fields = {k: v for k, v in data.items() if k not in ("type", "version")}
        return option.make_config(**fields)

    def __str__(self) -> str:
        params = dataclasses.asdict(self)
        if not params:
            return self.name
        args = ",".join(f"{k}={v}" for k, v in params.items())
        return f"{self.name}({args})"
