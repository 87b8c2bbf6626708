"""HTML pages from Jinja2 templates shipped with the package, autoescaped.

Every page extends ``base.html.j2`` (head, style, title); ``macros.html.j2``
holds the shared pieces (tables, figures). A layer renders its own template with
:func:`render`; values are escaped unless a template marks them safe, so a title
or an LLM reply can never inject markup.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import TYPE_CHECKING, Any

from tastemaker.reporting.values import column_digits, shown

if TYPE_CHECKING:
    import jinja2


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """An image embedded in the page itself, so a page is one self-contained file."""
    return f"data:{mime};base64," + base64.b64encode(data).decode()


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
    env.filters["cell"] = shown
    env.filters["data_uri"] = data_uri
    env.globals["column_digits"] = column_digits
    return env


def render(template: str, **context: Any) -> str:
    """Render a template of ``tastemaker/reporting/templates`` with ``context``."""
    return environment().get_template(template).render(**context)
