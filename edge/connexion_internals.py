"""The one place that reaches into Connexion's internals, for speed; written for Connexion 3.3.0
(constraints.txt pins it, and tests/test_connexion_internals.py fails when what this relies on
changes). docs/decisions.md says why.

Connexion's AsyncApp does per-operation work on every request: it wraps the handler in its
parameter and response decorators anew (its `AsyncOperation.fn`, a property, and
`ASGIDecorator.__call__`), inspecting the handler's signature each time, and its request
validation builds a URI parser and every validator anew (`RequestValidationOperation.__call__`).
`AsyncApp` here does that work once per operation; what is validated, and what a handler
receives and returns, is unchanged.

`ApiKeys` is Connexion's API key check calling edge.security.api_key_info, which Connexion
otherwise finds by name in the spec (`x-apikeyInfoFunc`): the spec served names no server code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import connexion
from connexion import utils
from connexion.apps.abstract import AbstractApp
from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.context import receive, scope
from connexion.decorators import StarletteDecorator
from connexion.middleware.request_validation import (
    RequestValidationAPI,
    RequestValidationMiddleware,
    RequestValidationOperation,
)
from connexion.operations import AbstractOperation
from connexion.security import ApiKeySecurityHandler
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
    "connexion.middleware.request_validation.RequestValidationOperation.__call__": "af472716211911b9",
    "connexion.middleware.request_validation.RequestValidationAPI.make_operation": "55b32cb8b0ab229e",
    "connexion.middleware.request_validation.RequestValidationMiddleware": "dad73e2fc4ebe6e3",
    "connexion.apps.abstract.AbstractApp.__call__": "ec746ddd9e417b78",
    "connexion.middleware.main.ConnexionMiddleware.add_middleware": "9227158b3050452a",
    "connexion.middleware.main.ConnexionMiddleware._build_middleware_stack": "87c580cd81e68e94",
    "connexion.security.ApiKeySecurityHandler.get_fn": "5255053c04eddc03",
    "connexion.security.AbstractSecurityHandler._resolve_func": "d6f6e16398e41bc2",
}
"""What this module copies or replaces in Connexion, by the first 16 hex digits of the SHA-256
of its source in CONNEXION_VERSION: a change there means this module must be read again."""


class _Decorator(StarletteDecorator):
    """Connexion's StarletteDecorator, its per-operation work done once."""

    def __init__(self, operation: AbstractOperation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._uri_parser = operation.uri_parser_class(operation.parameters, operation.body_definition())

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        decorated = self.decorate(function)

        @functools.wraps(function)
        async def wrapper(*_args: Any, **_kwargs: Any) -> Any:
            request = self.framework.get_request(uri_parser=self._uri_parser, scope=scope, receive=receive)
            return await decorated(request)

        return wrapper


class _Operation(AsyncOperation):
    def __init__(self, fn: Callable[..., Any], operation: AbstractOperation, **kwargs: Any) -> None:
        super().__init__(fn, operation_id=operation.operation_id, **kwargs)
        self._decorated = _Decorator(operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)(fn)

    @property
    def fn(self) -> Callable[..., Any]:
        return self._decorated


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


class AsyncApp(connexion.AsyncApp):
    """Connexion's AsyncApp, with each operation's handler decorated, and its request validators
    made, once instead of on every request."""

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
            self._validation_swapped = True
        await self.middleware(scope, receive, send)


class ApiKeys(ApiKeySecurityHandler):
    """Connexion's `apiKey` handler (`security_map`), checking keys with edge.security.api_key_info."""

    def _resolve_func(self, security_scheme: Any) -> Callable[..., Any]:
        return api_key_info
