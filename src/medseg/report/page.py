"""HTML pages from the Jinja2 templates in ``templates/`` (autoescaped; no external
resources: styles and scripts are inline, pictures are data URIs)."""

from __future__ import annotations

import math
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined


def number(value: object, digits: int = 3) -> str:
    """A value for a table cell: fixed digits, "n/a" when undefined.

    Examples
    --------
    >>> number(0.12345), number(None), number(float("nan")), number(float("inf"), 1)
    ('0.123', 'n/a', 'n/a', 'inf')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def p_value(value: object) -> str:
    """A p-value for a table: two significant digits, "< 0.001" below that, "n/a" when
    undefined.

    Examples
    --------
    >>> p_value(0.04321), p_value(0.00002), p_value(float("nan"))
    ('0.043', '< 0.001', 'n/a')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    as_float = float(value)  # type: ignore[arg-type]
    return "< 0.001" if as_float < 0.001 else f"{as_float:.2g}"


def sort_key(value: object) -> str:
    """A cell's value for the page's sorting script: a number JavaScript parses, "" when
    undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    as_float = float(value)  # type: ignore[arg-type]
    return ("Infinity" if as_float > 0 else "-Infinity") if math.isinf(as_float) else repr(as_float)


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("medseg.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )
    environment.filters["number"] = number
    environment.filters["raw"] = sort_key
    environment.filters["pvalue"] = p_value
    return environment


def render_page(template: str, **context: object) -> str:
    """The page ``templates/TEMPLATE`` with ``context`` (every value escaped)."""
    return _environment().get_template(template).render(**context)
