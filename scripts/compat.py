"""The breaking-change gate (`./scripts/dev compat`): the working spec against the latest released one.

    python scripts/compat.py [--spec openapi/openapi.yaml] [--released openapi/released]

Exits 1 naming each change that would break a client of /api/v1, else 0, saying which version bump
the changes call for. Optic's `breaking-changes` rules judge operations, parameters, request and
response bodies, enums and status codes; the checks here add what those rules leave out (response
headers, and bounds narrowed for requests or widened for responses). Both compare what is served
under /api/v1 only: the paths are prefixed with their server URL first, so that moving an operation
to the /api alias alone counts as removing it from /api/v1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
OPTIC = ROOT / "node_modules" / ".bin" / "optic"
STANDARD = ROOT / "scripts" / "optic-standard.yml"
BASE_PATH = "/api/v1"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
# Bounds a request may only widen and a response may only narrow: (keyword, True where a larger value is wider).
BOUNDS = (
    ("maximum", True),
    ("maxLength", True),
    ("maxItems", True),
    ("maxProperties", True),
    ("minimum", False),
    ("minLength", False),
    ("minItems", False),
    ("minProperties", False),
)
Document = dict[str, Any]


def version(text: str) -> tuple[int, int, int]:
    """`text` as (major, minor, patch); ValueError unless it is a plain semantic version."""
    found = SEMVER.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def latest_release(folder: Path) -> Path:
    """The released spec with the highest version in `folder` (files named VERSION.yaml)."""
    releases = sorted(folder.glob("*.yaml"), key=lambda path: version(path.stem))
    if not releases:
        sys.exit(f"no released spec in {folder}: release one first (see the README)")
    return releases[-1]


def under_base_path(doc: Document) -> Document:
    """`doc` with each path prefixed by the server URL it is served under, keeping only /api/v1's."""
    flat = {key: value for key, value in doc.items() if key != "servers"}
    flat["servers"] = [{"url": "/"}]
    flat["paths"] = {}
    for path, item in (doc.get("paths") or {}).items():
        for server in item.get("servers") or doc.get("servers") or [{"url": "/"}]:
            base = urlsplit(str(server.get("url", "/"))).path.rstrip("/")
            if base == BASE_PATH or base.startswith(BASE_PATH + "/") or (base == "" and path.startswith(BASE_PATH)):
                flat["paths"][base + path] = {key: value for key, value in item.items() if key != "servers"}
    return flat


def optic_breaks(old: Document, new: Document) -> list[str] | None:
    """Optic's breaking-change findings, one line each; None where Node.js tools are not installed."""
    if not (OPTIC.exists() and shutil.which("node")):
        return None
    with tempfile.TemporaryDirectory(prefix="compat-") as folder:
        paths = []
        for name, doc in (("released", old), ("working", new)):
            path = Path(folder, f"{name}.yaml")
            path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
            paths.append(str(path))
        env = {**os.environ, "OPTIC_TELEMETRY_LEVEL": "off", "NO_UPDATE_NOTIFIER": "1", "CI": "true"}
        result = subprocess.run(
            [OPTIC, "diff", *paths, "--check", "--standard", STANDARD],
            cwd=folder,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    breaks = list(dict.fromkeys(parse_optic(result.stdout)))
    if result.returncode != 0 and not breaks:
        sys.exit(f"optic failed without naming a break:\n{result.stdout}{result.stderr}")
    return breaks


def parse_optic(output: str) -> Iterator[str]:
    """The failed checks in optic's report, each as `METHOD /path: [rule] message`."""
    operation = ""
    for line in output.splitlines():
        heading = re.match(r"^[x✔] ([A-Z]+ \S+?):", line)
        if heading:
            operation = heading.group(1)
        failed = re.match(r"^\s*x (\[[^]]+\] .*?)( This is a breaking change\.)?\s*$", line)
        if failed:
            yield f"{operation}: {failed.group(1)}"


def resolve(doc: Document, node: Any, seen: frozenset[str] = frozenset()) -> Any:
    """`node` with every local `$ref` replaced by what it points at (a cycle is left as its $ref)."""
    if isinstance(node, list):
        return [resolve(doc, item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return resolve(doc, target, seen | {ref})
    return {key: resolve(doc, value, seen) for key, value in node.items()}


def flatten(schema: Any) -> dict[str, Any]:
    """A schema's own keywords merged with its `allOf` members' (the tighter bound wins)."""
    if not isinstance(schema, dict):
        return {}
    merged = {key: value for key, value in schema.items() if key != "allOf"}
    for member in schema.get("allOf") or []:
        for key, value in flatten(member).items():
            wider_is_larger = dict(BOUNDS).get(key)
            if key in merged and wider_is_larger is not None:
                merged[key] = min(merged[key], value) if wider_is_larger else max(merged[key], value)
            elif key == "properties":
                merged["properties"] = {**value, **merged.get("properties", {})}
            else:
                merged.setdefault(key, value)
    return merged


def bound_breaks(where: str, old: Any, new: Any, request: bool) -> Iterator[str]:
    """Bounds of `new` that a client of `old` would trip on: narrowed in a request, widened in a response."""
    old, new = flatten(old), flatten(new)
    rule = "request bound narrowed" if request else "response bound widened"
    for key, wider_is_larger in BOUNDS:
        before, after = old.get(key), new.get(key)
        if before == after or (before is None and not request) or (after is None and request):
            continue
        if before is None or after is None:
            yield f"{where}: [{rule}] {key} {'added' if before is None else 'removed'} ({before} -> {after})"
        elif ((after > before) != wider_is_larger) if request else ((after > before) == wider_is_larger):
            yield f"{where}: [{rule}] {key} {before} -> {after}"
    if request and new.get("pattern") not in (None, old.get("pattern")):
        yield f"{where}: [{rule}] pattern {old.get('pattern')} -> {new.get('pattern')}"
    for name, schema in (new.get("properties") or {}).items():
        if name in (old.get("properties") or {}):
            yield from bound_breaks(f"{where}.{name}", old["properties"][name], schema, request)
    if "items" in old and "items" in new:
        yield from bound_breaks(f"{where}[]", old["items"], new["items"], request)


def operations(doc: Document) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                parameters = [*item.get("parameters", []), *item[method].get("parameters", [])]
                yield f"{method.upper()} {path}", {**item[method], "parameters": parameters}


def own_breaks(old: Document, new: Document) -> Iterator[str]:
    """What optic's rules leave out: removed response headers, and changed bounds."""
    old, new = resolve(old, old), resolve(new, new)
    after = dict(operations(new))
    for name, before in operations(old):
        if name not in after:
            continue  # optic names the removed operation
        now = after[name]
        new_parameters = {(p["in"], p["name"]): p for p in now["parameters"]}
        for parameter in before["parameters"]:
            key = (parameter["in"], parameter["name"])
            if key in new_parameters:
                where = f"{name}: {key[0]} parameter {key[1]}"
                yield from bound_breaks(where, parameter.get("schema"), new_parameters[key].get("schema"), True)
        for media, content in ((before.get("requestBody") or {}).get("content") or {}).items():
            new_content = ((now.get("requestBody") or {}).get("content") or {}).get(media)
            if new_content:
                where = f"{name}: request body {media}"
                yield from bound_breaks(where, content.get("schema"), new_content.get("schema"), True)
        for status, response in (before.get("responses") or {}).items():
            new_response = (now.get("responses") or {}).get(status)
            if not new_response:
                continue  # optic names the removed status code
            headers = {header.lower(): value for header, value in (new_response.get("headers") or {}).items()}
            for header, value in (response.get("headers") or {}).items():
                if header.lower() not in headers:
                    yield f"{name}: [response header removed] {status} {header}"
                else:
                    where = f"{name}: response {status} header {header}"
                    yield from bound_breaks(where, value.get("schema"), headers[header.lower()].get("schema"), False)
            for media, content in (response.get("content") or {}).items():
                new_content = (new_response.get("content") or {}).get(media)
                if new_content:
                    where = f"{name}: response {status} {media}"
                    yield from bound_breaks(where, content.get("schema"), new_content.get("schema"), False)


def without_version(doc: Document) -> Document:
    return {**doc, "info": {key: value for key, value in doc.get("info", {}).items() if key != "version"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "openapi" / "openapi.yaml")
    parser.add_argument("--released", type=Path, default=ROOT / "openapi" / "released")
    args = parser.parse_args(argv)
    released_path = latest_release(args.released)
    released, working = (yaml.safe_load(path.read_text()) for path in (released_path, args.spec))
    released_version = version(released_path.stem)
    try:
        working_version = version(str(working["info"]["version"]))
    except ValueError as error:
        print(f"FAILED: info.version: {error}")
        return 1
    name = f"{args.spec.name} ({'.'.join(map(str, working_version))})"
    print(f"==> compat: {name} against the released {released_path.stem}, for clients of {BASE_PATH}", flush=True)

    old, new = under_base_path(released), under_base_path(working)
    unchanged = without_version(working) == without_version(released)
    found = [] if unchanged else optic_breaks(old, new)  # optic's diff: some 12 s of CPU
    if found is None:
        print("SKIPPED: optic's breaking-change rules: Node.js (node and npm) is not installed here.")
    breaks = [*(found or []), *dict.fromkeys(own_breaks(old, new))]
    if breaks:
        print(f"FAILED: {len(breaks)} breaking change(s) for clients of {BASE_PATH}:")
        print("\n".join(f"  BREAKING {line}" for line in breaks))
        return 1
    current, last = ".".join(map(str, working_version)), released_path.stem
    if working_version < released_version:
        print(f"FAILED: info.version {current} is older than the released {last}")
        return 1
    if unchanged:
        print(f"OK: the spec is the released {last}; no version bump is due.")
        if current != last:
            print(f"NOTE: info.version says {current}, but nothing but it changed since {last}.")
        return 0
    major, minor, patch = released_version
    due = f"{major}.{minor + 1}.0"
    print(f"OK: no breaking change; the spec changed compatibly since {last}: a minor version bump is due ({due}),")
    print(f"    or a patch ({major}.{minor}.{patch + 1}) if only descriptions or examples changed.")
    if working_version == released_version:
        print(f"NOTE: info.version is still {last} although the spec changed: bump it to {due} when releasing.")
    else:
        print(f"NOTE: {current} is not released yet: release it as openapi/released/{current}.yaml (see the README).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
