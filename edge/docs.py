"""The static docs site that `./scripts/dev docs` builds from the spec, served at /docs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from edge.problems import starlette_problem


def docs_site(folder: Path) -> Callable[[Request], Awaitable[Response]]:
    """The site in `folder`, one HTML page; a 404 problem saying how to build it where it is not."""

    async def page(_request: Request) -> Response:
        index = folder / "index.html"
        if not index.is_file():
            return starlette_problem(404, "Not Found", "The docs site is not built here; run ./scripts/dev docs.")
        return FileResponse(index, media_type="text/html")

    return page
