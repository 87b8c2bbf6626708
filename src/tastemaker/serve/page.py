"""The web page of the service: one Jinja2 template, a script and a style sheet.

``GET /`` renders ``templates/index.html.j2`` (autoescaped); the page's script
(``static/app.js``, plain JavaScript, no build step, no CDN, so it works offline)
calls the JSON API. Static files are served by name from the fixed set shipped in
``static/``: a request never names a path on disk.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import cache
from importlib.resources import files
from itertools import chain
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tastemaker.serve.context import served
from tastemaker.serve.schemas import ItemOut

router = APIRouter(include_in_schema=False)
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}


@cache
def template() -> Any:
    """The page template, autoescaped, from the package's ``serve/templates``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tastemaker.serve", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("index.html.j2")


@cache
def static_file(name: str) -> bytes:
    return (files("tastemaker.serve") / "static" / name).read_bytes()


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    settings = getattr(request.app.state, "settings", None)
    assets = b"".join(static_file(name) for name in STATIC)
    html = template().render(
        needs_key=bool(getattr(settings, "api_key", None)),
        version=hashlib.sha256(assets).hexdigest()[:12],  # a new file, a new URL: no stale cache
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get(
    "/popular",
    include_in_schema=True,
    response_model=list[ItemOut],
    summary="The most interacted-with items (the page's grid to build a history from)",
)
def popular(request: Request, k: Annotated[int, Query(ge=1, le=200)] = 24) -> list[dict[str, Any]]:
    """Items by their number of known interactions, ties by catalog order; the score is
    that number."""
    state = served(request)
    counts = Counter(chain.from_iterable(state.histories.values()))
    top = sorted(counts.items(), key=lambda kv: (-kv[1], state.item_index.get(kv[0], 0)))[:k]
    return [state.item_view(item, float(n)) for item, n in top]


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return JSONResponse(
            {"error": f"no static file '{name}'", "fix": f"use one of: {', '.join(STATIC)}"},
            status_code=404,
        )
    return Response(static_file(name), media_type=STATIC[name])


__all__ = ["router"]
