"""operationIds to handler functions, with the dependencies each one names bound to it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from connexion.resolver import Resolver


class BoundResolver(Resolver):
    """Resolves operationIds to handler functions, handing each the dependencies it names, so that
    handlers take the database as an argument instead of importing it."""

    def __init__(self, **dependencies: Any) -> None:
        super().__init__()
        self.dependencies = dependencies

    def resolve_function_from_operation_id(self, operation_id: str) -> Callable[..., Any]:
        function = super().resolve_function_from_operation_id(operation_id)
        wanted = inspect.signature(function).parameters
        return functools.partial(function, **{k: v for k, v in self.dependencies.items() if k in wanted})
