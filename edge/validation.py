"""Connexion's validators, made to answer 400 (never 500) to any malformed request and to list
every violation at once, each with a JSON pointer into the body or the parameter's name."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import ProblemException
from connexion.json_schema import Draft4RequestValidator
from connexion.lifecycle import ConnexionRequest
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from rfc3339_validator import validate_rfc3339
from starlette.types import Scope

from edge.problems import invalid, invalid_parameters, short

MAX_INT_DIGITS = 1000
INTEGER = re.compile(r"[-+]?[0-9]+")
LEAP_SECOND = re.compile(r"(T[0-9]{2}:[0-9]{2}:)60")
FORMATS = copy.deepcopy(jsonschema.Draft4Validator.FORMAT_CHECKER)
"""jsonschema's format checks, but for a date-time's, which takes RFC 3339's leap second (`:60`)
as well formed: whether the service can store that instant is a 422, not a 400."""


@FORMATS.checks("date-time")
def _date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    return bool(validate_rfc3339(LEAP_SECOND.sub(r"\g<1>59", instance.upper(), count=1)))


def _pointer(path: Iterable[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _violations(error: jsonschema.ValidationError) -> list[dict[str, str]]:
    """One entry per field: a missing or unexpected property points at that property."""
    here = list(error.absolute_path)
    required: Any = error.validator_value
    schema: Any = error.schema
    if error.validator == "required" and isinstance(error.instance, dict):
        names = [n for n in required if n not in error.instance and repr(n) in error.message]
        return [{"detail": f"'{n}' is a required property.", "pointer": _pointer([*here, n])} for n in names]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = schema.get("properties", {})
        return [
            {"detail": short(f"{n!r} is not a property this operation takes."), "pointer": _pointer([*here, n])}
            for n in error.instance
            if n not in known
        ]
    return [{"detail": short(error.message), "pointer": _pointer(here)}]


def _too_deep() -> ProblemException:
    return invalid("The request body is nested too deeply.", [{"detail": "Too deeply nested.", "pointer": ""}])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    # Python's own limit answers with advice about sys.set_int_max_str_digits; say it plainly.
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"a number has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("an object has the same name twice")
    return obj


class JSONBody(JSONRequestBodyValidator):
    """Connexion's JSON body validator, made to answer 400 (never 500) to bodies that are not
    UTF-8, not strict JSON or nested too deeply, and to list every schema violation at once."""

    @functools.cached_property
    def _validator(self) -> Any:  # Connexion's makes one per request, with the stock formats
        return Draft4RequestValidator(self._schema, format_checker=FORMATS)

    async def _parse(self, stream: Any, scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise invalid("The request body is not valid UTF-8.", [{"detail": str(error), "pointer": ""}]) from None
        try:
            return json.loads(
                text, parse_constant=_reject_constant, parse_int=_bounded_int, object_pairs_hook=_no_duplicate_keys
            )
        except RecursionError:
            raise _too_deep() from None
        except ValueError as error:
            raise invalid(
                "The request body is not valid JSON.", [{"detail": short(str(error)), "pointer": ""}]
            ) from None

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if body is None:  # an empty body never gets here: Connexion answers "RequestBody is required"
            raise invalid("The request body is null.", [{"detail": "The body must be a JSON object.", "pointer": ""}])
        try:
            found = sorted(self._validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
        except RecursionError:
            raise _too_deep() from None
        if found:
            errors = [v for error in found for v in _violations(error)]
            raise invalid(f"The request body is invalid: {len(errors)} problem(s).", errors)
        return None


class Parameters(ParameterValidator):
    """Connexion's parameter validator, made to list every violation at once, each by name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One schema validator per parameter, made once, not on every request.
        self.schemas = {
            (where, param["name"]): jsonschema.Draft4Validator(
                param["schema"], format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
            )
            for where, params in self.parameters.items()
            for param in params
        }

    def validate_request(self, request: ConnexionRequest) -> None:
        errors = []
        if self.strict_validation:
            for name in sorted(self.validate_query_parameter_list(request, self.security_query_params)):
                errors.append(
                    {"detail": short(f"{name!r} is not a parameter this operation takes."), "parameter": name}
                )
        sources = {
            "query": request.query_params,
            "path": request.path_params,
            "header": request.headers,
            "cookie": request.cookies,
        }
        # Connexion converts with int(), which also takes "1_0", " 7" and non-ASCII digits.
        raw = {"query": request._starlette_request.query_params, "path": request._starlette_request.path_params}
        for where, params in self.parameters.items():
            for param in params:
                given_times = len(raw["query"].getlist(param["name"])) if where == "query" else 1
                if given_times > 1 and param["schema"].get("type") != "array":
                    detail = f"It is given {given_times} times; send it once."
                    errors.append({"detail": detail, "parameter": param["name"]})
                    continue
                value = sources[where].get(param["name"])
                if value is None:
                    if param.get("required"):
                        errors.append({"detail": f"The {where} parameter is required.", "parameter": param["name"]})
                    continue
                given = raw.get(where, {}).get(param["name"])
                if param["schema"].get("type") == "integer" and isinstance(given, str) and not INTEGER.fullmatch(given):
                    errors.append({"detail": short(f"{given!r} is not an integer."), "parameter": param["name"]})
                    continue
                for error in self.schemas[where, param["name"]].iter_errors(value):
                    errors.append({"detail": short(error.message), "parameter": param["name"]})
        if errors:
            raise invalid_parameters(errors)


VALIDATORS: dict[str, Any] = {
    **VALIDATOR_MAP,
    "parameter": Parameters,
    "body": MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": JSONBody}),
}
"""Connexion's `validator_map`: ours for parameters and JSON bodies, Connexion's for the rest."""
