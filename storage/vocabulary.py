"""The starting vocabulary (vocabulary.json): at least ten words for each seeded group, with how
each character of a word is read (`parts`, as the portal's own schema has them). Romaji is
Hepburn, long vowels written twice (ookii, kuukou)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VOCABULARY = Path(__file__).with_name("vocabulary.json")


def rows() -> tuple[list[dict[str, Any]], list[dict[str, int]]]:
    """The words (ids from 1, group by group) and which group each belongs to."""
    words: list[dict[str, Any]] = []
    memberships: list[dict[str, int]] = []
    for group_id, group in json.loads(VOCABULARY.read_text(encoding="utf-8")).items():
        for word in group["words"]:
            words.append({"id": len(words) + 1, **word})
            memberships.append({"group_id": int(group_id), "word_id": len(words)})
    return words, memberships
