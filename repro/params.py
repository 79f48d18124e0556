"""Chapter parameters: their specs, and validation that fails in one line before anything runs."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

SCALES = ("smoke", "default", "full")
DEVICES = ("auto", "cpu", "cuda")


class ParameterError(ValueError):
    """A chapter parameter is unknown, of the wrong type or out of range. The message is one line."""


@dataclass(frozen=True)
class Param:
    """One parameter of a chapter's papermill ``parameters`` cell."""

    name: str
    type: type
    default: Any
    choices: tuple | None = None
    minimum: float | None = None
    help: str = ""

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        bound = f" >= {self.minimum}" if self.minimum is not None else ""
        return f"{self.type.__name__}{bound}"

    def coerce(self, value: Any, chapter: str) -> Any:
        """Return ``value`` as this parameter's type, or raise ParameterError saying what is accepted."""
        where = f"chapter {chapter!r}: parameter {self.name!r}"
        if isinstance(value, str) and self.type is not str:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise ParameterError(f"{where} got {value!r}; it accepts {self.describe()}") from None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and self.type is not bool or not isinstance(value, self.type):
            raise ParameterError(
                f"{where} got {value!r} ({type(value).__name__}); it accepts {self.describe()}"
            )
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"{where} got {value!r}; it accepts {self.describe()}")
        if self.minimum is not None and value < self.minimum:
            raise ParameterError(f"{where} got {value!r}; it accepts {self.describe()}")
        return value


COMMON = (
    Param("scale", str, "default", SCALES, help="smoke: CI (<= 60 s); default: the book (<= 4 min); full: one GPU"),
    Param("device", str, "auto", DEVICES, help="auto picks CUDA when present"),
    Param("seed", int, 0, minimum=0, help="base seed; the same seed gives the same numbers on CPU"),
)


def validate(chapter: str, specs: tuple[Param, ...], values: dict[str, Any]) -> dict[str, Any]:
    """Check ``values`` against ``specs`` and return the full, typed parameter set (defaults filled in)."""
    by_name = {p.name: p for p in specs}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ParameterError(
            f"chapter {chapter!r} has no parameter {unknown[0]!r}; it accepts: {', '.join(by_name)}"
        )
    return {name: p.coerce(values.get(name, p.default), chapter) for name, p in by_name.items()}


def parse_parameters_cell(source: str) -> dict[str, Any]:
    """Read the literal assignments of a ``parameters`` cell (typed literals only, as the handbook requires)."""
    tree = ast.parse(source)
    out = {}
    for node in tree.body:
        if not (isinstance(node, (ast.Assign, ast.AnnAssign))):
            raise ValueError(f"parameters cell may hold only assignments, found: {ast.unparse(node)}")
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        out[target.id] = ast.literal_eval(node.value)
    return out
