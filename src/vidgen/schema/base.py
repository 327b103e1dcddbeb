"""What every schema section is built from: a strict, closed pydantic model.

Write each field's `description=` as the fix a user needs ("an integer >= 1, e.g. 4"): the error
for a bad value repeats it. Keys the YAML always sets have no default here (the YAML is the one
place defaults live); optional keys that no YAML file sets default to None.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


class Section(BaseModel):
    """A closed config section: unknown keys and wrong types are refused (3.5 is not an int, "abc"
    is not a number, 1 is not a bool); an int is accepted where a float is asked for."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _text(value: Any) -> Any:
    """Hydra parses `prompt=3` or `run.name=7` as an int; a text field takes it as the text."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Text = Annotated[str, BeforeValidator(_text)]
