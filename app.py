"""Builds the service: the Connexion AsyncApp serving openapi/openapi.yaml, its middleware and its
error mapping. `app` is for ASGI servers; `python app.py` migrates, seeds and serves."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any

import connexion
import jsonschema
import yaml
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, ProblemException, UnsupportedMediaTypeProblem
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.problem import problem
from connexion.resolver import Resolver
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import Engine
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage import migrate
from storage.engine import make_engine
from storage.errors import Duplicate, NotFound, Unavailable, Unprocessable

HERE = Path(__file__).resolve().parent
SPEC = HERE / "openapi" / "openapi.yaml"
BASE_PATHS = ("/api/v1", "/api")
MAX_BODY_BYTES = 16384
"""The largest request body read, as the spec documents it."""
MAX_MESSAGE_CHARS = 300
MAX_INT_DIGITS = 1000
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
RETRY_AFTER_SECONDS = 1
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
INTEGER = re.compile(r"[-+]?[0-9]+")
DEFAULT_CORS_ORIGINS = (
    "http://localhost:3000,http://127.0.0.1:3000,http://localhost:5173,http://127.0.0.1:5173,"
    "http://localhost:8080,http://127.0.0.1:8080"
)

log = logging.getLogger("study_sessions")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


@dataclass(frozen=True)
class Settings:
    """What the service is configured with; `from_env` reads the variables the README lists."""

    database_url: str = "sqlite:///var/study_sessions.db"
    host: str = "127.0.0.1"
    port: int = 5000
    cors_origins: tuple[str, ...] = tuple(DEFAULT_CORS_ORIGINS.split(","))
    log_level: str = "INFO"
    db_timeout: float = 5.0
    validate_responses: bool = False
    docs_dir: Path = HERE / "build" / "docs"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            database_url=env.get("DATABASE_URL", cls.database_url),
            host=env.get("HOST", cls.host),
            port=int(env.get("PORT", cls.port)),
            cors_origins=tuple(
                o.strip() for o in env.get("CORS_ORIGINS", DEFAULT_CORS_ORIGINS).split(",") if o.strip()
            ),
            log_level=env.get("LOG_LEVEL", cls.log_level).upper(),
            db_timeout=float(env.get("DB_TIMEOUT", cls.db_timeout)),
            validate_responses=env.get("VALIDATE_RESPONSES", "") in ("1", "true", "yes"),
        )


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """One JSON object a line on `stream` (stderr by default), for every logger, each stamped
    with the request id."""
    handler = logging.StreamHandler(stream)
    # uvicorn adds a `color_message` copy of its messages, with terminal escapes; leave it out.
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}", style="{", reserved_attrs=[*RESERVED_ATTRS, "color_message"]
        )
    )
    handler.addFilter(_stamp_request_id)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Our access log replaces uvicorn's; connexion logs every 4xx it raises, which says it twice.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("connexion").setLevel(logging.ERROR)


def _stamp_request_id(record: logging.LogRecord) -> bool:
    if not hasattr(record, "request_id"):
        record.request_id = request_id_var.get()
    return True


# Middleware -----------------------------------------------------------------------------------


class HTTPMiddleware(ABC):
    """An ASGI middleware for HTTP requests; anything else (lifespan) passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @abstractmethod
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request, calling `self.app` to go on."""


class RequestLog(HTTPMiddleware):
    """Outermost: takes the request id from `X-Request-ID` or makes one, echoes it on every
    response, and logs one JSON line per request."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _stamp(message)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
            request_id_var.reset(token)


class CORS(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflight is a problem like every other error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = _starlette_problem(400, "Bad Request", f"{bytes(response.body).decode()}.")
        refused.headers.update({k: v for k, v in response.headers.items() if k.lower().startswith(("vary", "access-"))})
        return refused


class NoSlashRedirects(HTTPMiddleware):
    """A path with a trailing slash is a 404, as the spec has no such path: Starlette would answer
    a 307 to the path without it, an absolute URL that the spec does not declare."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if len(scope["path"]) > 1 and scope["path"].endswith("/"):
            raise ProblemException(status=404, title="Not Found", detail="Nothing is at this path.")
        await self.app(scope, receive, send)


def _stamp(message: Message) -> None:
    MutableHeaders(scope=message)["X-Request-ID"] = request_id_var.get()


class StampRequestId(HTTPMiddleware):
    """Innermost: puts `X-Request-ID` on the handler's own responses too, where response
    validation (on in tests) checks them against the spec."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                _stamp(message)
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestBody(HTTPMiddleware):
    """Reads at most MAX_BODY_BYTES of a request body (413 past that, without reading on) and hands
    it on whole, with its true Content-Length and its media type in lower case, to the validation
    behind it. A body must say it is JSON (415 otherwise, and for any charset but UTF-8); a body
    on a method that takes none is dropped unread."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        headers = MutableHeaders(scope=scope)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            del headers["content-type"], headers["content-length"], headers["transfer-encoding"]
            await self.app(scope, _replay(b"", receive), send)
            return
        declared = headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise BadRequestProblem(detail="Content-Length is not a whole number.")
            if int(declared) > MAX_BODY_BYTES:
                raise _too_large()
        body = await _read_at_most(receive, MAX_BODY_BYTES)
        if body is None:
            return  # the client went away
        if "content-type" in headers:
            headers["content-type"] = _media_type(headers["content-type"])
        elif body:
            raise UnsupportedMediaTypeProblem(detail="The body has no Content-Type; send it as application/json.")
        headers["content-length"] = str(len(body))
        await self.app(scope, _replay(body, receive), send)


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`body` as the whole request body, then the client's own channel (for its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _media_type(content_type: str) -> str:
    """`content_type` without parameters, in lower case (media types are case-insensitive);
    a charset other than UTF-8 is refused, since JSON is UTF-8."""
    media, *parameters = (part.strip() for part in content_type.split(";"))
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaTypeProblem(detail=f"The body is {value.strip()}; send it as UTF-8.")
    return media.lower()


def _too_large() -> ProblemException:
    return ProblemException(
        status=413, title="Content Too Large", detail=f"The request body is larger than {MAX_BODY_BYTES} bytes."
    )


# Validation: every violation in one problem --------------------------------------------------


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _pointer(path: Iterable[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _violations(error: jsonschema.ValidationError) -> list[dict[str, str]]:
    """One entry per field: a missing or unexpected property points at that property."""
    here = list(error.absolute_path)
    required: Any = error.validator_value
    schema: Any = error.schema
    if error.validator == "required" and isinstance(error.instance, dict):
        names = [n for n in required if n not in error.instance and repr(n) in error.message]
        return [{"detail": f"'{n}' is a required property.", "pointer": _pointer([*here, n])} for n in names]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = schema.get("properties", {})
        return [
            {"detail": _short(f"{n!r} is not a property this operation takes."), "pointer": _pointer([*here, n])}
            for n in error.instance
            if n not in known
        ]
    return [{"detail": _short(error.message), "pointer": _pointer(here)}]


def _invalid(detail: str, errors: list[dict[str, str]]) -> ProblemException:
    return ProblemException(status=400, title="Bad Request", detail=detail, ext={"errors": errors})


def _invalid_parameters(errors: list[dict[str, str]]) -> ProblemException:
    return _invalid(f"The request's parameters are invalid: {len(errors)} problem(s).", errors)


def _too_deep() -> ProblemException:
    return _invalid("The request body is nested too deeply.", [{"detail": "Too deeply nested.", "pointer": ""}])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    # Python's own limit answers with advice about sys.set_int_max_str_digits; say it plainly.
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"a number has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("an object has the same name twice")
    return obj


class JSONBody(JSONRequestBodyValidator):
    """Connexion's JSON body validator, made to answer 400 (never 500) to bodies that are not
    UTF-8, not strict JSON or nested too deeply, and to list every schema violation at once."""

    async def _parse(self, stream: Any, scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _invalid("The request body is not valid UTF-8.", [{"detail": str(error), "pointer": ""}]) from None
        try:
            return json.loads(
                text, parse_constant=_reject_constant, parse_int=_bounded_int, object_pairs_hook=_no_duplicate_keys
            )
        except RecursionError:
            raise _too_deep() from None
        except ValueError as error:
            raise _invalid(
                "The request body is not valid JSON.", [{"detail": _short(str(error)), "pointer": ""}]
            ) from None

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if body is None:  # an empty body never gets here: Connexion answers "RequestBody is required"
            raise _invalid("The request body is null.", [{"detail": "The body must be a JSON object.", "pointer": ""}])
        try:
            found = sorted(self._validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
        except RecursionError:
            raise _too_deep() from None
        if found:
            errors = [v for error in found for v in _violations(error)]
            raise _invalid(f"The request body is invalid: {len(errors)} problem(s).", errors)
        return None


class Parameters(ParameterValidator):
    """Connexion's parameter validator, made to list every violation at once, each by name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One schema validator per parameter, made once, not on every request.
        self.schemas = {
            (where, param["name"]): jsonschema.Draft4Validator(
                param["schema"], format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
            )
            for where, params in self.parameters.items()
            for param in params
        }

    def validate_request(self, request: ConnexionRequest) -> None:
        errors = []
        if self.strict_validation:
            for name in sorted(self.validate_query_parameter_list(request, self.security_query_params)):
                errors.append(
                    {"detail": _short(f"{name!r} is not a parameter this operation takes."), "parameter": name}
                )
        sources = {
            "query": request.query_params,
            "path": request.path_params,
            "header": request.headers,
            "cookie": request.cookies,
        }
        # Connexion converts with int(), which also takes "1_0", " 7" and non-ASCII digits.
        raw = {"query": request._starlette_request.query_params, "path": request._starlette_request.path_params}
        for where, params in self.parameters.items():
            for param in params:
                value = sources[where].get(param["name"])
                if value is None:
                    if param.get("required"):
                        errors.append({"detail": f"The {where} parameter is required.", "parameter": param["name"]})
                    continue
                given = raw.get(where, {}).get(param["name"])
                if param["schema"].get("type") == "integer" and isinstance(given, str) and not INTEGER.fullmatch(given):
                    errors.append({"detail": _short(f"{given!r} is not an integer."), "parameter": param["name"]})
                    continue
                for error in self.schemas[where, param["name"]].iter_errors(value):
                    errors.append({"detail": _short(error.message), "parameter": param["name"]})
        if errors:
            raise _invalid_parameters(errors)


VALIDATORS: dict[str, Any] = {
    **VALIDATOR_MAP,
    "parameter": Parameters,
    "body": MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": JSONBody}),
}


# Errors -> problems ---------------------------------------------------------------------------


def _problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **ext: Any
) -> ConnexionResponse:
    return problem(status=status, title=title, detail=detail, headers=headers, ext=ext or None)


def not_found(_request: ConnexionRequest, error: NotFound) -> ConnexionResponse:
    return _problem(404, "Not Found", str(error))


def duplicate(request: ConnexionRequest, error: Duplicate) -> ConnexionResponse:
    location = f"{request.url.path.rstrip('/')}/{error.existing_id}"
    return _problem(409, "Conflict", str(error), {"Location": location})


def unprocessable(_request: ConnexionRequest, error: Unprocessable) -> ConnexionResponse:
    errors = [{"detail": v.detail, "pointer": v.pointer} for v in error.violations]
    return _problem(422, "Unprocessable Content", "The request cannot be applied as it stands.", errors=errors)


def unavailable(_request: ConnexionRequest, error: Unavailable) -> ConnexionResponse:
    log.warning("database unavailable", extra={"error": str(error)})
    return _problem(
        503,
        "Service Unavailable",
        "The database is unavailable or busy; nothing was stored. Try again shortly.",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class RoutingErrors:
    """Starlette's own 404 and 405 (from routing) as problems. A 405's `Allow` lists every method
    the spec gives the path (Starlette names only the first route it matched); a path that fits a
    spec path but not the type of its parameters (`/study-sessions/abc`) is a 400 naming them."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.paths = [
            (compile_path(base + path)[0], _methods(item))
            for base in BASE_PATHS
            for path, item in spec["paths"].items()
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
        values = match.groupdict().items()
        errors = [{"detail": _short(f"{v!r} is not a valid {k}."), "parameter": k} for k, v in values]
        return _invalid_parameters(errors).to_problem()


def _methods(path_item: dict[str, Any]) -> list[str]:
    """The methods a spec path answers: its operations', and HEAD wherever there is GET."""
    methods = {m.upper() for m in path_item if m in HTTP_METHODS}
    return sorted(methods | {"HEAD"} if "GET" in methods else methods)


def _not_allowed(method: str, allow: str) -> ConnexionResponse:
    return _problem(405, "Method Not Allowed", f"{method} is not allowed here; use {allow}.", {"Allow": allow})


def problem_exception(request: ConnexionRequest, error: ProblemException) -> ConnexionResponse:
    """Connexion's own problems; a 400 always lists its violations, a 5xx tells nothing of its cause."""
    if error.status >= 500:
        return internal_error(request, error)
    if error.status == 400 and not (error.ext or {}).get("errors"):
        error.ext = {**(error.ext or {}), "errors": [{"detail": str(error.detail), "pointer": ""}]}
    return error.to_problem()


def internal_error(_request: ConnexionRequest, error: Exception) -> ConnexionResponse:
    request_id = request_id_var.get()
    log.error("unhandled error", exc_info=error)
    return _problem(
        500, "Internal Server Error", f"The server failed to answer; the log has it under request id {request_id}."
    )


def docs_site(folder: Path) -> Callable[[Request], Awaitable[Response]]:
    """The static docs site that `./scripts/dev docs` builds from the spec, as one HTML page."""

    async def page(_request: Request) -> Response:
        index = folder / "index.html"
        if not index.is_file():
            return _starlette_problem(404, "Not Found", "The docs site is not built here; run ./scripts/dev docs.")
        return FileResponse(index, media_type="text/html")

    return page


def _starlette_problem(status: int, title: str, detail: str) -> Response:
    response = _problem(status, title, detail)
    return Response(response.body, status_code=status, media_type=response.mimetype)


# The app -----------------------------------------------------------------------------------------


class BoundResolver(Resolver):
    """Resolves operationIds to handler functions, handing each the dependencies it names."""

    def __init__(self, **dependencies: Any) -> None:
        super().__init__()
        self.dependencies = dependencies

    def resolve_function_from_operation_id(self, operation_id: str) -> Callable[..., Any]:
        function = super().resolve_function_from_operation_id(operation_id)
        wanted = inspect.signature(function).parameters
        return functools.partial(function, **{k: v for k, v in self.dependencies.items() if k in wanted})


def create_app(settings: Settings, engine: Engine | None = None) -> connexion.AsyncApp:
    """The service for `settings`, on `engine` if given (else one made from the settings)."""
    engine = engine or make_engine(settings.database_url, busy_timeout=settings.db_timeout)
    app = connexion.AsyncApp(__name__, specification_dir=SPEC.parent)
    for base_path in BASE_PATHS:
        app.add_api(
            SPEC.name,
            base_path=base_path,
            name=base_path,
            resolver=BoundResolver(db=engine, base_path=base_path),
            strict_validation=True,
            validate_responses=settings.validate_responses,
            validator_map=VALIDATORS,
            swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui", spec_path="/openapi.json"),
        )
    app.add_url_rule("/docs", "docs", docs_site(settings.docs_dir), methods=["GET", "HEAD"])
    app.add_error_handler(NotFound, not_found)
    app.add_error_handler(Duplicate, duplicate)
    app.add_error_handler(Unprocessable, unprocessable)
    app.add_error_handler(Unavailable, unavailable)
    app.add_error_handler(ProblemException, problem_exception)
    app.add_error_handler(HTTPException, RoutingErrors(yaml.safe_load(SPEC.read_text())))
    app.add_error_handler(Exception, internal_error)
    app.add_middleware(RequestLog, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        CORS,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "X-Request-ID"],
        expose_headers=["Location", "Retry-After", "X-Request-ID"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(NoSlashRedirects, position=MiddlewarePosition.BEFORE_ROUTING)
    app.add_middleware(RequestBody, position=MiddlewarePosition.BEFORE_VALIDATION)
    app.add_middleware(StampRequestId, position=MiddlewarePosition.BEFORE_CONTEXT)
    return app


def main() -> None:
    """Migrate and seed the database, then serve until stopped."""
    import uvicorn

    settings = _settings
    engine = make_engine(settings.database_url, busy_timeout=settings.db_timeout)
    migrate.upgrade(engine)
    migrate.seed(engine)
    log.info("listening", extra={"url": f"http://{settings.host}:{settings.port}/api/v1/ui"})
    uvicorn.run(create_app(settings, engine), host=settings.host, port=settings.port, log_config=None)


_settings = Settings.from_env()
configure_logging(_settings.log_level)
app = create_app(_settings)

if __name__ == "__main__":
    main()
