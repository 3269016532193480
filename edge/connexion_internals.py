"""The one place that reaches into Connexion's internals, for speed; written for Connexion 3.3.0
(constraints.txt pins it, and tests/test_connexion_internals.py fails when what this relies on
changes). docs/decisions.md says why.

Connexion's AsyncApp wraps a handler in its parameter and response decorators anew on every
request, and builds a new URI parser for it each time (its `AsyncOperation.fn`, a property, and
`ASGIDecorator.__call__`): that inspects the handler's signature and looks up the operation's
body definition on every call, a tenth of a create's time. `AsyncApp` here does the same work
once per operation, at start-up; what a handler receives and returns is unchanged."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import connexion
from connexion.apps.abstract import AbstractApp
from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.context import receive, scope
from connexion.decorators import StarletteDecorator
from connexion.operations import AbstractOperation

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


class AsyncApp(connexion.AsyncApp):
    """Connexion's AsyncApp, with each operation's handler decorated once instead of per request."""

    def __init__(self, import_name: str, **kwargs: Any) -> None:
        # connexion.AsyncApp.__init__ makes its own AsyncASGIApp, then hands everything to
        # AbstractApp.__init__; this does the same with ours.
        self._middleware_app = _ASGIApp()
        AbstractApp.__init__(self, import_name, **kwargs)
