"""The HTTP edge: everything between the socket and the handlers, a module per concern.

settings    what the service is configured with, from the environment
logs        one JSON line per event, stamped with the request id
middleware  ASGI middleware: request id and access log, CORS, request bodies, paths
validation  Connexion's validators, made to list every violation and never answer 500
problems    every error as an RFC 9457 problem
resolver    operationIds to handler functions, with their dependencies bound
docs        the static docs site built from the spec
"""
