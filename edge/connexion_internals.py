"""The one place that reaches into Connexion's internals, for speed; written for Connexion 3.3.0
(constraints.txt pins it, and tests/test_connexion_internals.py fails when what this relies on
changes). docs/decisions.md says why.

Connexion's AsyncApp does per-operation work on every request: it wraps the handler in its
parameter and response decorators anew (its `AsyncOperation.fn`, a property, and
`ASGIDecorator.__call__`), inspecting the handler's signature each time, and its request
validation builds a URI parser and every validator anew (`RequestValidationOperation.__call__`).
Even once made, its parameter and response decorators work out again, on every request, what
the operation and the handler fix: the handler's arguments, the spec's parameters by kind, their
defaults, the body's schema, the media types it answers in (and read a form, empty, from every
JSON body). `AsyncApp` here does that work once per operation; what is validated, and what a
handler receives and returns, is unchanged. And Connexion checks the document against the OpenAPI
schema for each API added (0.15 s each); here a document that passed is not checked again in the
same process.

`ApiKeys` is Connexion's API key check calling edge.security.api_key_info, which Connexion
otherwise finds by name in the spec (`x-apikeyInfoFunc`): the spec served names no server code."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import pickle
from collections.abc import Callable
from copy import deepcopy
from typing import Any

import connexion
from connexion import utils
from connexion.apps.abstract import AbstractApp
from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.context import _context, _receive, _scope, context
from connexion.datastructures import NoContent
from connexion.decorators import StarletteDecorator, parameter
from connexion.frameworks.starlette import Starlette as StarletteFramework
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware.request_validation import (
    RequestValidationAPI,
    RequestValidationMiddleware,
    RequestValidationOperation,
)
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.operations import AbstractOperation, OpenAPIOperation
from connexion.security import ApiKeySecurityHandler
from connexion.spec import OpenAPISpecification, Specification
from python_multipart.multipart import parse_options_header
from starlette._utils import get_route_path
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from edge.security import api_key_info

CONNEXION_VERSION = "3.3.0"
"""The version this module was written for and tested with."""
RELIED_ON = {
    "connexion.apps.asynchronous.AsyncOperation.fn": "9cad70e32840c9ec",
    "connexion.apps.asynchronous.AsyncOperation.__call__": "5435ed498983193d",
    "connexion.apps.asynchronous.AsyncOperation.__init__": "09b0d7fdd70326ed",
    "connexion.apps.asynchronous.AsyncApi.make_operation": "555eaf3ca12397b1",
    "connexion.apps.asynchronous.AsyncApp.__init__": "624f5070177b0d80",
    "connexion.decorators.main.ASGIDecorator.__call__": "7397ac94437e4d7e",
    "connexion.decorators.main.BaseDecorator.decorate": "ecc6529a18274fda",
    "connexion.decorators.main.BaseDecorator.uri_parser": "140072be21d36da0",
    "connexion.decorators.main.ASGIDecorator._sync_async_decorator": "a3d0d1e60df946ef",
    "connexion.decorators.parameter.BaseParameterDecorator._maybe_get_body": "18183067248151ee",
    "connexion.decorators.parameter.AsyncParameterDecorator.__call__": "c3223e31eb92742e",
    "connexion.decorators.parameter.prep_kwargs": "46eb57dd9685e1c4",
    "connexion.decorators.parameter.get_arguments": "b2912a96f0107039",
    "connexion.decorators.parameter._get_path_arguments": "dce2f42b8282c286",
    "connexion.decorators.parameter._get_query_arguments": "77f3e0a63d78d965",
    "connexion.decorators.parameter._get_query_defaults": "e8c78eeae75a9e2b",
    "connexion.decorators.parameter._query_args_helper": "272f1cd04f9d1145",
    "connexion.decorators.parameter._get_val_from_param": "23ae7326c64a85ea",
    "connexion.decorators.parameter._get_body_argument": "ad0202326b99a5b7",
    "connexion.decorators.parameter._get_body_argument_json": "848df9bf9c63aa3e",
    "connexion.decorators.parameter._get_file_arguments": "4db36f2ce7488666",
    "connexion.decorators.response.AsyncResponseDecorator.__call__": "7abcfdcec0b6fbd6",
    "connexion.decorators.response.BaseResponseDecorator.build_framework_response": "929063da14237df2",
    "connexion.decorators.response.BaseResponseDecorator._infer_content_type": "da0fd1dd66d78f0d",
    "connexion.decorators.response.BaseResponseDecorator._serialize_data": "3c69993f253fdf42",
    "connexion.decorators.response.BaseResponseDecorator._update_headers": "ae27ac39d072445a",
    "connexion.decorators.response.BaseResponseDecorator._unpack_handler_response": "1c1b11f62235e7e6",
    "connexion.utils.extract_content_type": "cf05b8c47077bb9b",
    "connexion.frameworks.starlette.Starlette.get_request": "0e2625a06664e504",
    "connexion.lifecycle.ConnexionRequest.get_body": "28f6a96f0cbc7948",
    "connexion.lifecycle.ConnexionRequest._split_form_files": "51a1abe7b8ab2b99",
    "connexion.middleware.context.ContextOperation.__call__": "3d58a914f557d135",
    "starlette.requests.Request._get_form": "7d96613dccd7737b",
    "connexion.middleware.request_validation.RequestValidationOperation.__call__": "af472716211911b9",
    "connexion.middleware.swagger_ui.SwaggerUIMiddleware.__call__": "63d1a07033fd923d",
    "connexion.middleware.swagger_ui.SwaggerUIMiddleware.add_api": "e260564a85361940",
    "connexion.middleware.swagger_ui.SwaggerUIMiddleware.default_fn": "0159a88e2d16bcb8",
    "connexion.middleware.swagger_ui.SwaggerUIAPI.add_swagger_ui": "f1e799878dc0c95d",
    "starlette._utils.get_route_path": "243011d2a68ca7fe",
    "starlette.routing.Router.app": "1b1fa16c99a8ce6b",
    "connexion.middleware.request_validation.RequestValidationAPI.make_operation": "55b32cb8b0ab229e",
    "connexion.middleware.request_validation.RequestValidationMiddleware": "dad73e2fc4ebe6e3",
    "connexion.apps.abstract.AbstractApp.__call__": "ec746ddd9e417b78",
    "connexion.middleware.main.ConnexionMiddleware.add_middleware": "9227158b3050452a",
    "connexion.middleware.main.ConnexionMiddleware._build_middleware_stack": "87c580cd81e68e94",
    "connexion.security.ApiKeySecurityHandler.get_fn": "5255053c04eddc03",
    "connexion.security.AbstractSecurityHandler._resolve_func": "d6f6e16398e41bc2",
    "connexion.spec.Specification.__init__": "4db416e79b8b3f11",
    "connexion.spec.Specification._validate_spec": "8164a6ab6b95deb9",
}
"""What this module copies or replaces in Connexion (and the Starlette form read it skips for
JSON bodies; constraints.txt pins Starlette too), by the first 16 hex digits of the SHA-256 of its
source in CONNEXION_VERSION: a change there means this module must be read again."""


class _Handler:
    """One operation's handler, called as Connexion's StarletteDecorator calls it (its parameter
    and response decorators), with what those work out on every request worked out once: the
    handler's arguments, which parameters are path and query ones and their defaults, the body's
    name, default and nullability, the media types the operation answers in. Connexion's own
    helpers cast the values. A request or an answer this does not cover (a media type other than
    the operation's JSON, or no Content-Type when the handler takes the body; an answer not a
    `(body, status, headers)` tuple naming one of the operation's media types) takes Connexion's
    own decorators, made once here too."""

    def __init__(self, function: Callable[..., Any], operation: AbstractOperation, **kwargs: Any) -> None:
        decorator = StarletteDecorator(**kwargs)
        self._connexion = decorator.decorate(function)
        self._uri_parser = operation.uri_parser_class(operation.parameters, operation.body_definition())
        self._response = decorator._response_decorator_cls(framework=decorator.framework, jsonifier=decorator.jsonifier)
        self._jsonifier = decorator.jsonifier
        self._function = function
        self._coroutine = asyncio.iscoroutinefunction(function)  # Connexion's _sync_async_decorator asks each call
        self._covered = isinstance(operation, OpenAPIOperation)
        if not self._covered:
            return

        sanitize: Callable[[str], str] = parameter.pythonic if decorator.pythonic_params else parameter.sanitized
        self._sanitize = sanitize
        arguments, has_kwargs = utils.inspect_function_arguments(parameter.unwrap_decorators(function))
        self._arguments, self._has_kwargs = arguments, has_kwargs
        self._path = {p["name"]: p for p in operation.parameters if p["in"] == "path"}
        self._query = {p["name"]: p for p in operation.parameters if p["in"] == "query"}
        self._query_defaults = parameter._get_query_defaults(self._query)
        self._copy_defaults = not all(
            isinstance(v, (str, int, float, type(None))) for v in self._query_defaults.values()
        )
        self._body_name = body_name = sanitize(operation.body_name(None))  # OpenAPI 3: not by media type
        self._read_body = body_name in arguments or has_kwargs
        self._pass_body = (
            operation.method.upper() != "TRACE"
            and (len(arguments) > 0 or has_kwargs)
            and operation.is_request_body_defined
            and self._read_body
        )
        # Only a request that says it is one of the operation's JSON media types, exactly: the
        # media type Connexion then works out is that one, and Starlette's form of it is empty.
        self._bodies = {
            media_type.encode("latin-1"): (
                utils.is_nullable(operation.body_schema(media_type)),
                operation.body_schema(media_type).get("default", {}),
            )
            for media_type in operation.consumes
            if utils.is_json_mimetype(media_type) and media_type == parse_options_header(media_type)[0].decode()
        }
        # Each name sanitized, and sanitized again (prep_kwargs sanitizes get_arguments' names).
        names = {*self._path, *self._query, operation.body_name(None)}
        self._names: dict[str, str] = {n: sanitize(n) for n in names} | {
            sanitize(n): sanitize(sanitize(n)) for n in names
        }
        self._produces = {
            media_type: utils.is_json_mimetype(utils.split_content_type(media_type)[0])
            for media_type in set(operation.produces)
        }

    def _sanitized(self, name: str) -> str:
        try:
            return self._names[name]
        except KeyError:
            return self._sanitize(name)

    async def _kwargs(self, request: ConnexionRequest, scope: Scope) -> dict[str, Any] | None:
        """The handler's keyword arguments as Connexion's `prep_kwargs` makes them, or None when
        this request is not one this covers."""
        if not self._covered:
            return None
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":  # Starlette's Headers.get: the first, names in lower case
                content_type = value
                break
        if content_type is None and self._read_body:
            return None
        if content_type is not None and content_type not in self._bodies:
            return None
        arguments, has_kwargs = self._arguments, self._has_kwargs

        body = await request.json() if self._read_body else None  # JSON here: ConnexionRequest.get_body

        kwargs: dict[str, Any] = {}
        for name, value in request.path_params.items():
            definition = self._path.get(name)
            kwargs[self._sanitized(name)] = (
                value if definition is None else parameter._get_val_from_param(value, definition)
            )
        if self._query or scope["query_string"]:
            query = deepcopy(self._query_defaults) if self._copy_defaults else dict(self._query_defaults)
            query = utils.deep_merge(query, request.query_params)
            kwargs.update(parameter._query_args_helper(self._query, query, arguments, has_kwargs, self._sanitized))
        if self._pass_body:
            assert content_type is not None  # self._pass_body implies self._read_body
            nullable, default = self._bodies[content_type]
            if nullable and utils.is_null(body):
                body = None
            elif body is None:
                body = deepcopy(default)
            kwargs[self._body_name] = body
        kwargs = {self._sanitized(k): v for k, v in kwargs.items()}

        for key, value in _context.get().items():
            if has_kwargs or key in arguments:
                kwargs[key] = value
            else:
                parameter.logger.debug("Context parameter '%s' not in function arguments", key)
        if parameter.CONTEXT_NAME in arguments:
            kwargs[parameter.CONTEXT_NAME] = context
        return kwargs

    def _answer(self, answer: Any) -> Any:
        """The Starlette response Connexion's response decorator makes of the handler's answer."""
        if type(answer) is tuple and len(answer) == 3 and type(answer[2]) is dict:
            data, status_code, headers = answer
            content_type = None
            for key, value in headers.items():  # utils.extract_content_type, for names that are str
                if type(key) is not str:
                    content_type = None
                    break
                if key.lower() == "content-type":
                    content_type = value
                    break
            json_ = self._produces.get(content_type) if isinstance(content_type, str) else None
            if json_ is not None and data is not None and data is not NoContent and not isinstance(data, Response):
                if json_:
                    data = self._jsonifier.dumps(data)
                return StarletteFramework.build_response(
                    data, content_type=content_type, status_code=status_code or 200, headers=headers
                )
        if StarletteFramework.is_framework_response(answer):
            return answer
        if isinstance(answer, ConnexionResponse):
            return StarletteFramework.connexion_to_framework_response(answer)
        return self._response.build_framework_response(answer)

    async def __call__(self) -> Any:
        scope, receive = _scope.get(), _receive.get()
        request = ConnexionRequest(scope, receive, uri_parser=self._uri_parser)
        kwargs = await self._kwargs(request, scope)
        if kwargs is None:
            return await self._connexion(request)
        if self._coroutine:
            answer = await self._function(**kwargs)
        else:
            answer = await run_in_threadpool(self._function, **kwargs)
        return self._answer(answer)


class _Operation(AsyncOperation):
    def __init__(self, fn: Callable[..., Any], operation: AbstractOperation, **kwargs: Any) -> None:
        super().__init__(fn, operation_id=operation.operation_id, **kwargs)
        self._handler = _Handler(fn, operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)

    @property
    def fn(self) -> Callable[..., Any]:
        return self._handler


class _Api(AsyncApi):
    def make_operation(self, operation: AbstractOperation) -> AsyncOperation:
        return _Operation(operation.function, operation, jsonifier=self.jsonifier, pythonic_params=self.pythonic_params)


class _ASGIApp(AsyncASGIApp):
    api_cls = _Api


class _RequestValidationOperation(RequestValidationOperation):
    """Connexion's request validation of one operation, its validators made once."""

    @functools.cached_property
    def _parameter_validator(self) -> Any:
        operation = self._operation
        uri_parser = operation._uri_parser_class(operation.parameters, operation.body_definition())
        return self._validator_map["parameter"](
            operation.parameters,
            uri_parser=uri_parser,
            strict_validation=self.strict_validation,
            security_query_params=self.security_query_params,
        )

    @functools.cache  # noqa: B019 - one per operation and media type, for the life of the app
    def _body_validator(self, mime_type: str, encoding: str) -> Any:
        operation = self._operation
        schema = operation.body_schema(mime_type)
        if not schema or mime_type not in self._validator_map["body"]:
            return None  # Connexion skips validation here too
        return self._validator_map["body"][mime_type](
            schema=schema,
            required=operation.request_body.get("required", False),
            nullable=utils.is_nullable(operation.body_definition(mime_type)),
            encoding=encoding,
            strict_validation=self.strict_validation,
            uri_parser=operation.uri_parser_class(operation.parameters, operation.body_definition()),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._parameter_validator.validate(scope)
        mime_type, encoding = self.extract_content_type(scope["headers"])
        self.validate_mime_type(mime_type)
        validator = self._body_validator(mime_type, encoding)
        if validator is not None:
            receive, scope = await validator.wrap_receive(receive, scope=scope)
        await self.next_app(scope, receive, send)


class _RequestValidationAPI(RequestValidationAPI):
    def make_operation(self, operation: AbstractOperation) -> RequestValidationOperation:
        return _RequestValidationOperation(
            self.next_app,
            operation=operation,
            strict_validation=self.strict_validation,
            validator_map=self.validator_map,
        )


class _RequestValidation(RequestValidationMiddleware):
    api_cls = _RequestValidationAPI


class _SwaggerUI(SwaggerUIMiddleware):
    """Connexion's Swagger UI middleware, which routes every request through a Starlette router of
    its own (each API's spec and console pages) before it lets it go on: here only the requests
    that router can answer are routed (a path that begins with one of its routes, or names an
    API's base path, which it redirects to the base path with a slash); every other request goes
    on as Connexion's `default_fn` sends it, a copy of its scope, unrouted."""

    _prefixes: tuple[str, ...] | None = None
    _bases: frozenset[str] = frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._prefixes is None:
                self._prefixes, self._bases = self._reachable()
            path = get_route_path(scope)
            if not path.startswith(self._prefixes) and path not in self._bases:
                await self.app(dict(scope), receive, send)
                return
        await super().__call__(scope, receive, send)

    def _reachable(self) -> tuple[tuple[str, ...], frozenset[str]]:
        """What the router answers: every route's path up to its first parameter, under each
        API's base path (a trailing slash left off: the router redirects to either form)."""
        prefixes, bases = [], set()
        for mount in self.router.routes:
            assert isinstance(mount, Mount)  # SwaggerUIMiddleware.add_api mounts each API
            bases.add(mount.path)
            for route in mount.routes:
                assert isinstance(route, Route | Mount)
                prefixes.append(mount.path + route.path.split("{")[0].rstrip("/"))
        return tuple(prefixes), frozenset(bases)


class AsyncApp(connexion.AsyncApp):
    """Connexion's AsyncApp, with each operation's handler decorated, and its request validators
    made, once instead of on every request, and only Swagger UI's own paths routed to it."""

    def __init__(self, import_name: str, **kwargs: Any) -> None:
        # connexion.AsyncApp.__init__ makes its own AsyncASGIApp, then hands everything to
        # AbstractApp.__init__; this does the same with ours.
        self._middleware_app = _ASGIApp()
        AbstractApp.__init__(self, import_name, **kwargs)
        self._validation_swapped = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._validation_swapped:
            # Once every middleware is added (MiddlewarePosition finds its place by Connexion's
            # own class), before the stack is built on the first event.
            stack = self.middleware.middlewares
            stack[stack.index(RequestValidationMiddleware)] = _RequestValidation
            stack[stack.index(SwaggerUIMiddleware)] = _SwaggerUI
            self._validation_swapped = True
        await self.middleware(scope, receive, send)


class ApiKeys(ApiKeySecurityHandler):
    """Connexion's `apiKey` handler (`security_map`), checking keys with edge.security.api_key_info."""

    def _resolve_func(self, security_scheme: Any) -> Callable[..., Any]:
        return api_key_info


_VALIDATED: set[bytes] = set()


def _validate_spec_once(cls: type[Specification], spec: dict[str, Any]) -> None:
    """Connexion's check of an OpenAPI 3 document against the OpenAPI schema (InvalidSpecification
    where it fails), made once per process for each document that passed it. It is a function of
    the document alone and costs 0.15 s: an app checked the same document once for each base path,
    and each app the tests make checked it again."""
    key = hashlib.sha256(pickle.dumps(spec)).digest()
    if key not in _VALIDATED:
        Specification._validate_spec.__func__(cls, spec)
        _VALIDATED.add(key)


# Specification.__init__ calls it on the document, its defaults set, before anything else reads it.
OpenAPISpecification._validate_spec = classmethod(_validate_spec_once)
