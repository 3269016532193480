"""The apps the service is measured against, on the same SQL (sql.py): `bare` (Starlette and
sqlite3, the practical limit) and `fastapi_peer` (FastAPI and pydantic, what a user would pick
instead). Both serve /api/v1/study-sessions with the service's status codes and bodies."""
