"""The service's errors: every one is JSON ``{"error", "fix"}`` with a status code.

Routers raise :class:`ApiError` with the status that fits (404 unknown ID, 409 a
model that cannot do what was asked, 503 not ready); any other
:class:`~tastemaker.errors.TastemakerError` raised while serving a request is the
request's fault (an invalid value somewhere below) and answers 422. The app's
handlers (``serve/app.py``) turn both into the JSON body.
"""

from __future__ import annotations

from tastemaker.errors import TastemakerError


class ApiError(TastemakerError):
    """A problem with a request, the HTTP status to answer it with, and what to do."""

    def __init__(
        self, status: int, problem: str, fix: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(problem, fix)
        self.status, self.headers = status, headers


def body(problem: str, fix: str) -> dict[str, str]:
    """The JSON of an error answer."""
    return {"error": problem, "fix": fix}


def unknown_item(item_id: str) -> ApiError:
    return ApiError(
        404, f"no item '{item_id}' in the catalog", "use an item ID from GET /items?query=..."
    )


def unknown_user(user_id: str) -> ApiError:
    return ApiError(
        404,
        f"no user '{user_id}' in the data or the feedback",
        "use a user ID from GET /users, or send feedback for the user first",
    )


__all__ = ["ApiError", "body", "unknown_item", "unknown_user"]
