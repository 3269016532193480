"""The platform's endpoints at the root as well (/healthz, /readyz, /metrics), where Kubernetes
probes and Prometheus look for them: each is the same operation as under the first base path."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware

ROOT_EXTENSION = "x-also-served-at-root"
"""The spec's mark on an operation that is served at the root too (its one place in the spec)."""


def root_paths(spec: dict[str, Any]) -> frozenset[str]:
    """The spec's paths whose operations are marked to be served at the root as well."""
    return frozenset(
        path
        for path, item in spec["paths"].items()
        if any(isinstance(op, dict) and op.get(ROOT_EXTENSION) is True for op in item.values())
    )


class RootAliases(HTTPMiddleware):
    """A request for one of `paths` at the root is routed as the same path under `base_path`: the
    same operation, answer, rate limit (none) and metrics; the request log keeps the path asked."""

    def __init__(self, app: ASGIApp, paths: frozenset[str], base_path: str) -> None:
        super().__init__(app)
        self.aliases = {path: base_path + path for path in paths}

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.aliases.get(scope["path"])
        if target is not None:
            scope = {**scope, "path": target, "raw_path": target.encode()}
        await self.app(scope, receive, send)
