"""ASGI middleware, one concern a module, in the order a request meets them."""

from edge.middleware.body import MAX_BODY_BYTES, RequestBody
from edge.middleware.clients import Clients
from edge.middleware.cors import CORS
from edge.middleware.hardening import SecurityHeaders
from edge.middleware.idempotency import IdempotencyKey
from edge.middleware.metrics import Metrics
from edge.middleware.paths import RequestHead
from edge.middleware.platform import RootAliases, root_paths
from edge.middleware.rate_limit import RateLimit, RefusalsRateLimit
from edge.middleware.request_log import RequestLog, StampRequestId

__all__ = [
    "CORS",
    "MAX_BODY_BYTES",
    "Clients",
    "IdempotencyKey",
    "Metrics",
    "RateLimit",
    "RefusalsRateLimit",
    "RequestBody",
    "RequestHead",
    "RequestLog",
    "RootAliases",
    "SecurityHeaders",
    "StampRequestId",
    "root_paths",
]
