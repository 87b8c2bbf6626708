"""HTML pages from Jinja2 templates shipped with the package, autoescaped.

Every page extends ``base.html.j2`` (head, style, title); ``macros.html.j2``
holds the shared pieces (tables, images). A layer renders its own template with
:func:`render`; values are escaped unless a template marks them safe.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import TYPE_CHECKING, Any

from tastemaker.reporting.markdown import format_cell

if TYPE_CHECKING:
    import jinja2


def data_uri(png: bytes) -> str:
    """A PNG embedded in the page itself, so a page is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


@cache
def environment() -> jinja2.Environment:
    """The one template environment: package templates, autoescaping, strict undefined."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tastemaker.reporting", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = format_cell
    env.filters["data_uri"] = data_uri
    return env


def render(template: str, **context: Any) -> str:
    """Render a template of ``tastemaker/reporting/templates`` with ``context``."""
    return environment().get_template(template).render(**context)
