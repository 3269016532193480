"""Who the client is, and API keys: the service holds only the keys' SHA-256 digests
(API_KEYS), and compares in constant time. Writes need a key when any is configured (reads too,
with READS_NEED_API_KEY); without API_KEYS the service runs open, as the spec it serves says."""

from __future__ import annotations

import copy
import hashlib
import hmac
from typing import Any

SCHEME = "ApiKey"
OPERATIONS_TAG = "operations"
"""The tag of /healthz, /readyz and /metrics: never behind a key, never rate limited."""
HEADER = "X-API-Key"
CHALLENGE = f'ApiKey header="{HEADER}"'
"""WWW-Authenticate on a 401: what to send, and where."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def accepted(key: str, digests: frozenset[str]) -> str | None:
    """The digest of `key` if it is one of `digests`; every digest is compared, in constant time."""
    found = None
    given = digest(key)
    for candidate in digests:
        if hmac.compare_digest(given, candidate):
            found = candidate
    return found


def api_key_info(apikey: str, request: Any) -> dict[str, Any] | None:
    """Connexion's x-apikeyInfoFunc: the key was checked by edge.middleware.clients for this very
    request; None (a 401) unless it was one of API_KEYS."""
    checked = request.context.get("api_key")
    if checked is None or not hmac.compare_digest(digest(apikey), checked):
        return None
    return {"sub": request.context["client"]}


def served_spec(spec: dict[str, Any], *, api_keys: frozenset[str], reads_need_api_key: bool) -> dict[str, Any]:
    """The spec as this instance enforces it: without API keys, no operation asks for one (and
    answers no 401); with READS_NEED_API_KEY, the reads of the API ask for one too."""
    spec = copy.deepcopy(spec)
    for item in spec["paths"].values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if not api_keys:
                operation.pop("security", None)
                operation["responses"].pop("401", None)
            elif reads_need_api_key and method == "get" and OPERATIONS_TAG not in operation["tags"]:
                operation["security"] = [{SCHEME: []}]
                operation["responses"]["401"] = {"$ref": "#/components/responses/Unauthorized"}
    if not api_keys:
        spec["components"].pop("securitySchemes", None)
        spec["components"]["responses"].pop("Unauthorized", None)
        spec["components"]["headers"].pop("WWW-Authenticate", None)
    return spec


def platform_operations(spec: dict[str, Any]) -> frozenset[str]:
    """The operationIds tagged `operations`."""
    return frozenset(
        operation["operationId"]
        for item in spec["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and OPERATIONS_TAG in operation.get("tags", [])
    )
