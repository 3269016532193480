"""Cross-origin requests from the origins the settings allow."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from edge.problems import starlette_problem


class CORS(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflight is a problem like every other error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = starlette_problem(400, "Bad Request", f"{bytes(response.body).decode()}.")
        refused.headers.update({k: v for k, v in response.headers.items() if k.lower().startswith(("vary", "access-"))})
        return refused
