"""The benchmark harness behind ./scripts/dev bench: the service against the practical limit (a
bare ASGI app) and the peer a user would pick (FastAPI), under the same wrk load."""
