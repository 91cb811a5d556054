"""The predict form's fields, generated from the model's preprocessing spec or its signature.

In: the spec of Contract 1 (`numeric` columns with `min`/`max`/`median`/`dtype`, `categorical`
columns with `categories`) or, for a model without one, its MLflow column signature.
Out: a list of `Field`s the template renders as `<input name=...>` / `<select name=...>`, with
ranges and defaults taken from the training reference so the untouched form is a typical row.
Ranges are shown, not enforced by the browser: the server scores a value outside its column's
range and flags it (`out_of_range`), which the page shows next to the probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

INTEGER_TYPES = {"long", "integer", "int", "int32", "int64"}
NUMERIC_TYPES = INTEGER_TYPES | {"double", "float", "number", "float32", "float64"}


@dataclass(frozen=True)
class Field:
    """One form control.

    Attributes:
        name: the model column (also the control's `name`).
        widget: "number" (`<input type=number>`), "select" or "text" (no spec: free text).
        required: False when the model imputes a missing value.
        min, max: the training range as strings ("" = none), shown beside the input.
        step, default: attribute values as strings ("" = leave out).
        options: the categories of a select.
    """

    name: str
    widget: str
    required: bool = False
    min: str = ""
    max: str = ""
    step: str = "any"
    default: str = ""
    options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def integer(self) -> bool:
        """Whether the column holds whole numbers."""
        return self.step == "1"


def _fmt(value: float) -> str:
    """A short decimal string for an attribute (no exponent, no trailing zeros)."""
    if not math.isfinite(value):
        return ""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def numeric_field(column: dict) -> Field:
    """A number input for one numeric spec column (integers step by 1, others by any amount)."""
    integer = str(column.get("dtype", "double")).lower() in INTEGER_TYPES
    low, high = _number(column.get("min")), _number(column.get("max"))
    default = _number(column.get("median"))
    if default is None and low is not None and high is not None:
        default = (low + high) / 2
    if integer:
        low = math.floor(low) if low is not None else None
        high = math.ceil(high) if high is not None else None
        default = round(default) if default is not None else None
    if default is not None and low is not None:
        default = max(default, low)
    if default is not None and high is not None:
        default = min(default, high)
    return Field(
        name=str(column["name"]),
        widget="number",
        required=not bool(column.get("allow_missing", True)),
        min=_fmt(low) if low is not None else "",
        max=_fmt(high) if high is not None else "",
        step="1" if integer else "any",
        default=_fmt(default) if default is not None else "",
    )


def categorical_field(column: dict) -> Field:
    """A select over the categories seen in training; the first category is preselected."""
    options = tuple(str(c) for c in column.get("categories", []))
    return Field(
        name=str(column["name"]),
        widget="select",
        required=not bool(column.get("allow_missing", True)),
        default=options[0] if options else "",
        options=options,
    )


def fields_from_spec(spec: dict) -> list[Field]:
    """Form fields for every input column of a preprocessing spec, numeric first.

    Args:
        spec: the model's `python_model.spec`.

    Returns:
        One `Field` per raw input column.
    """
    fields = [numeric_field(c) for c in spec.get("numeric", [])]
    fields += [categorical_field(c) for c in spec.get("categorical", [])]
    return fields


def fields_from_signature(inputs: list[tuple[str, str]]) -> list[Field]:
    """Fallback for models without a spec: `(name, type)` pairs of the input signature.

    Numeric types become unbounded number inputs; anything else becomes a free-text input,
    since without a spec the categories are unknown.
    """
    out = []
    for name, dtype in inputs:
        if dtype.lower() in NUMERIC_TYPES:
            step = "1" if dtype.lower() in INTEGER_TYPES else "any"
            out.append(Field(name=name, widget="number", step=step))
        else:
            out.append(Field(name=name, widget="text"))
    return out
