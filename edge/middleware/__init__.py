"""ASGI middleware, one concern a module, in the order a request meets them."""

from edge.middleware.body import MAX_BODY_BYTES, RequestBody
from edge.middleware.cors import CORS
from edge.middleware.metrics import Metrics
from edge.middleware.paths import NoSlashRedirects
from edge.middleware.request_log import RequestLog, StampRequestId

__all__ = ["CORS", "MAX_BODY_BYTES", "Metrics", "NoSlashRedirects", "RequestBody", "RequestLog", "StampRequestId"]
