"""The composition root: the Connexion AsyncApp that serves openapi/openapi.yaml, put together from
the HTTP edge (edge/), the handlers (handlers/) and the database (storage/).

`app` is for ASGI servers; `python app.py` migrates, seeds and serves."""

from __future__ import annotations

import contextlib
import gc
import json
import sys
from collections.abc import AsyncIterator

import connexion
import yaml
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from edge import files, metrics, problems, security
from edge.connexion_internals import ApiKeys, AsyncApp
from edge.docs import docs_site
from edge.logs import configure_logging, log
from edge.middleware import (
    CORS,
    Clients,
    IdempotencyKey,
    Metrics,
    RateLimit,
    RefusalsRateLimit,
    RequestBody,
    RequestHead,
    RequestLog,
    RootAliases,
    SecurityHeaders,
    StampRequestId,
    root_paths,
)
from edge.protocol import accepting_from, protocol_class
from edge.rate_limits import RateLimits
from edge.resolver import BoundResolver
from edge.settings import Settings, settings_or_exit
from edge.startup import prepare_database
from edge.validation import VALIDATORS
from storage.database import Database
from storage.engine import make_engine

SPEC = files.SPEC
BASE_PATHS = ("/api/v1", "/api")
"""Every operation is served under each; `/api` is the path the portal already calls."""


def create_app(settings: Settings, engine: Engine | None = None) -> connexion.AsyncApp:
    """The service for `settings`, on `engine` if given (else one made from the settings)."""
    engine = engine or make_engine(
        settings.database_url, busy_timeout=settings.db_timeout, pool_size=settings.db_pool_size, create=False
    )
    db = Database(
        engine, connections=settings.db_pool_size, timeout=settings.db_timeout, observe=metrics.observe_connections
    )

    # libyaml's safe loader (PyYAML's wheels have it): the same document as yaml.safe_load's, read
    # ten times faster, at a worker's start and in each app the tests make.
    document = yaml.load(SPEC.read_text(), Loader=yaml.CSafeLoader)
    spec = security.served_spec(document, api_keys=settings.api_keys, reads_need_api_key=settings.reads_need_api_key)
    limits = RateLimits(write=settings.rate_limit_write, read=settings.rate_limit_read, redis_url=settings.redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        if not settings.api_keys:
            log.warning("API_KEYS is not set: this service takes writes from anyone who can reach it")
        # What start-up built (the spec, its validators) lives as long as the process: keep it out
        # of the garbage collector's full passes, which otherwise stall requests for tens of ms.
        gc.collect()
        gc.freeze()
        metrics.CONNECTIONS_MAX.set(db.connections)
        yield
        await db.aclose()  # after the server has drained its requests: finish, then hang up

    # Words are Japanese: answer them as UTF-8 text (JSON's own encoding), not as \u escapes.
    jsonifier = Jsonifier(json, ensure_ascii=False)
    app = AsyncApp(__name__, specification_dir=SPEC.parent, lifespan=lifespan, jsonifier=jsonifier)
    for base_path in BASE_PATHS:
        app.add_api(
            spec,
            base_path=base_path,
            name=base_path,
            resolver=BoundResolver(db=db, base_path=base_path, metrics=metrics.exposition),
            strict_validation=True,
            validate_responses=settings.validate_responses,
            validator_map=VALIDATORS,
            security_map={"apiKey": ApiKeys},
            swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui", spec_path="/openapi.json"),
        )
    app.add_url_rule("/docs", "docs", docs_site(settings.docs_dir), methods=["GET", "HEAD"])

    for exception, handler in problems.HANDLERS:
        app.add_error_handler(exception, handler)
    app.add_error_handler(HTTPException, problems.RoutingErrors(spec, BASE_PATHS))
    app.add_error_handler(Exception, problems.internal_error)

    app.add_middleware(RequestLog, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(SecurityHeaders, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(Metrics, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        CORS,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "X-Request-ID", "X-API-Key", "Idempotency-Key"],
        expose_headers=["Location", "Retry-After", "X-Request-ID", "RateLimit", "RateLimit-Policy"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(Clients, position=MiddlewarePosition.BEFORE_ROUTING, api_keys=settings.api_keys)
    app.add_middleware(RefusalsRateLimit, position=MiddlewarePosition.BEFORE_ROUTING, limits=limits)
    app.add_middleware(RequestHead, position=MiddlewarePosition.BEFORE_ROUTING)
    app.add_middleware(
        RootAliases, position=MiddlewarePosition.BEFORE_ROUTING, paths=root_paths(spec), base_path=BASE_PATHS[0]
    )
    app.add_middleware(
        RateLimit, position=MiddlewarePosition.BEFORE_SECURITY, limits=limits, exempt=security.platform_operations(spec)
    )
    app.add_middleware(IdempotencyKey, position=MiddlewarePosition.BEFORE_SECURITY)
    app.add_middleware(RequestBody, position=MiddlewarePosition.BEFORE_VALIDATION)
    app.add_middleware(StampRequestId, position=MiddlewarePosition.BEFORE_CONTEXT)
    if settings.validate_responses:  # the response validator checks the handlers' answers for them too
        app.add_middleware(SecurityHeaders, position=MiddlewarePosition.BEFORE_CONTEXT)
    return app


def main() -> None:
    """Migrate and seed the database, then serve until stopped."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    settings = _settings
    prepare_database(settings)
    log.info("listening", extra={"url": f"http://{settings.host}:{settings.port}/api/v1/ui"})
    http = protocol_class(settings.max_connections)  # bounded heads, head timeout, connections
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        server_header=False,  # no banner naming the server and its version
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        http=http,
    )
    # uvicorn.run's own steps, with the listening socket in hand.
    listener = config.bind_socket()
    accepting_from(http, [listener])
    server = uvicorn.Server(config)
    server.run(sockets=[listener])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


_settings = settings_or_exit()
configure_logging(_settings.log_level)
app = create_app(_settings)

if __name__ == "__main__":
    main()
