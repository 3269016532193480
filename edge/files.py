"""Where the service's files are: the spec and the built docs site, in a source checkout or, once
installed from a wheel, in the environment's data folder (share/study-sessions/)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent
INSTALLED = Path(sysconfig.get_path("data")) / "share" / "study-sessions"
"""What setup.cfg's data_files installs: openapi/openapi.yaml and, where it was built, docs/."""


def _found(in_source: str, installed: str) -> Path:
    """The checkout's file where this code runs from one, else the installed copy."""
    source = SOURCE / in_source
    return source if (SOURCE / "setup.cfg").is_file() or not (INSTALLED / installed).exists() else INSTALLED / installed


SPEC = _found("openapi/openapi.yaml", "openapi/openapi.yaml")
DOCS_DIR = _found("build/docs", "docs")
