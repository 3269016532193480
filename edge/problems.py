"""Every error as an RFC 9457 problem (`application/problem+json`): the one place where exceptions
become responses, so that no handler builds an error body by hand."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.problem import problem
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from edge import security
from edge.logs import log, request_id_var
from storage.errors import Duplicate, InProgress, KeyReused, NotFound, SchemaOutOfDate, Unavailable, Unprocessable

RETRY_AFTER_SECONDS = 1
MAX_MESSAGE_CHARS = 300
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def short(text: str) -> str:
    """`text`, cut to a length that a problem's `detail` can carry."""
    return cut(text, MAX_MESSAGE_CHARS)


MAX_ERRORS = 100
"""The most violations a problem lists (the spec's maxItems); its `detail` still counts them all."""
MAX_POINTER = 1000
MAX_ID_DIGITS = 19
"""The digits of the largest id, 2**63 - 1."""
MAX_PARAMETER = 100


def bounded(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    """`errors` within the spec's limits: at most MAX_ERRORS, each field cut to its maxLength
    (a pointer or name that long comes from a client's own input)."""
    limits = {"detail": MAX_MESSAGE_CHARS, "pointer": MAX_POINTER, "parameter": MAX_PARAMETER}
    return [{k: cut(v, limits[k]) for k, v in error.items()} for error in errors[:MAX_ERRORS]]


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, its end marked "..." where it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def invalid(detail: str, errors: list[dict[str, str]]) -> ProblemException:
    """A 400 that lists every violation, each with a `pointer` or a `parameter`."""
    return ProblemException(status=400, title="Bad Request", detail=detail, ext={"errors": bounded(errors)})


def invalid_parameters(errors: list[dict[str, str]]) -> ProblemException:
    return invalid(f"The request's parameters are invalid: {len(errors)} problem(s).", errors)


def _problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **ext: Any
) -> ConnexionResponse:
    return problem(status=status, title=title, detail=detail, headers=headers, ext=ext or None)


def starlette_problem(status: int, title: str, detail: str) -> Response:
    """A problem for the parts of the app that Starlette answers itself, outside Connexion."""
    response = _problem(status, title, detail)
    return Response(response.body, status_code=status, media_type=response.mimetype)


def not_found(_request: ConnexionRequest, error: NotFound) -> ConnexionResponse:
    return _problem(404, "Not Found", str(error))


def duplicate(request: ConnexionRequest, error: Duplicate) -> ConnexionResponse:
    location = f"{request.url.path.rstrip('/')}/{error.existing_id}"
    return _problem(409, "Conflict", str(error), {"Location": location})


def unprocessable(_request: ConnexionRequest, error: Unprocessable) -> ConnexionResponse:
    errors = bounded([{"detail": v.detail, "pointer": v.pointer} for v in error.violations])
    return _problem(422, "Unprocessable Content", "The request cannot be applied as it stands.", errors=errors)


def key_reused(_request: ConnexionRequest, error: KeyReused) -> ConnexionResponse:
    errors = [{"detail": str(error), "parameter": "Idempotency-Key"}]
    return _problem(422, "Unprocessable Content", "The request cannot be applied as it stands.", errors=errors)


def in_progress(_request: ConnexionRequest, error: InProgress) -> ConnexionResponse:
    return _problem(409, "Conflict", f"{error} Try again shortly to get its answer.")


def unavailable(_request: ConnexionRequest, error: Unavailable) -> ConnexionResponse:
    log.warning("database unavailable", extra={"error": short(str(error))})
    if isinstance(error, SchemaOutOfDate):
        detail = f"{error} Run the migrations (python app.py, or the gunicorn command, does)."
    else:
        detail = f"The database is unavailable ({error.cause}); nothing was stored. Try again shortly."
    return _problem(503, "Service Unavailable", detail, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def problem_exception(request: ConnexionRequest, error: ProblemException) -> ConnexionResponse:
    """Connexion's own problems; a 400 always lists its violations, a 5xx tells nothing of its cause."""
    if error.status >= 500:
        return internal_error(request, error)
    if error.status == 400 and not (error.ext or {}).get("errors"):
        error.ext = {**(error.ext or {}), "errors": [{"detail": short(str(error.detail)), "pointer": ""}]}
    error.detail = short(str(error.detail))
    if error.status == 415 and str(error.detail).startswith("Invalid Content-type"):  # Connexion's words
        media_type = request.headers.get("content-type", "")
        error.detail = (
            short(f"The body is {media_type}; this operation takes application/json.")
            if media_type
            else "The body has an empty Content-Type; send it as application/json."
        )
    if error.status == 401:  # Connexion's security check: missing key, or not one of API_KEYS
        return _problem(
            401,
            "Unauthorized",
            f"This operation needs a valid API key in {security.HEADER}.",
            {"WWW-Authenticate": security.CHALLENGE},
        )
    return error.to_problem()


def internal_error(_request: ConnexionRequest, error: Exception) -> ConnexionResponse:
    request_id = request_id_var.get()
    log.error("unhandled error", exc_info=error)
    return _problem(
        500, "Internal Server Error", f"The server failed to answer; the log has it under request id {request_id}."
    )


class RoutingErrors:
    """Starlette's own 404 and 405 (from routing) as problems. A 405's `Allow` lists every method
    the spec gives the path (Starlette names only the first route it matched); a path that fits a
    spec path but not the type of its parameters (`/study-sessions/abc`) is a 400 naming them."""

    def __init__(self, spec: dict[str, Any], base_paths: tuple[str, ...]) -> None:
        paths = spec["paths"]
        self.paths = [
            (compile_path(base + path)[0], _methods(item)) for base in base_paths for path, item in paths.items()
        ]

    def __call__(self, request: ConnexionRequest, error: HTTPException) -> ConnexionResponse:
        if error.status_code not in (404, 405):
            return _problem(error.status_code, HTTPStatus(error.status_code).phrase, str(error.detail))
        matched = next(((m, methods) for regex, methods in self.paths if (m := regex.match(request.url.path))), None)
        if matched is None:
            if error.status_code == 405:  # a route of our own (the docs, Swagger UI): Starlette knows
                return _not_allowed(request.method, (error.headers or {}).get("Allow", ""))
            return _problem(404, "Not Found", "Nothing is at this path.")
        match, methods = matched
        if request.method not in methods:
            return _not_allowed(request.method, ", ".join(methods))
        # Every path parameter is a whole number: name those that are not.
        values = [
            (k, v)
            for k, v in match.groupdict().items()
            if not (v.isascii() and v.isdigit() and len(v) <= MAX_ID_DIGITS)
        ]
        values = values or list(match.groupdict().items())
        errors = [{"detail": short(f"{v!r} is not a valid {k}."), "parameter": k} for k, v in values]
        return invalid_parameters(errors).to_problem()


def _methods(path_item: dict[str, Any]) -> list[str]:
    """The methods a spec path answers: its operations', and HEAD wherever there is GET."""
    methods = {m.upper() for m in path_item if m in HTTP_METHODS}
    return sorted(methods | {"HEAD"} if "GET" in methods else methods)


def _not_allowed(method: str, allow: str) -> ConnexionResponse:
    return _problem(405, "Method Not Allowed", f"{method} is not allowed here; use {allow}.", {"Allow": allow})


HANDLERS: list[tuple[type[Exception], Any]] = [
    (NotFound, not_found),
    (Duplicate, duplicate),
    (Unprocessable, unprocessable),
    (Unavailable, unavailable),
    (KeyReused, key_reused),
    (InProgress, in_progress),
    (ProblemException, problem_exception),
]
"""Which exception becomes which problem; routing errors and the catch-all (a 500) come after."""
