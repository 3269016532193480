"""Word reviews inside a study session, and the words of a group with their counts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, delete, func, select
from starlette.testclient import TestClient

from app import create_app
from edge.settings import Settings
from storage import vocabulary
from storage.schema import review_items
from tests.conftest import TEST_API_KEY, count_sessions
from tests.servers import GUNICORN, service

CORE_VERBS = list(range(1, 12))  # the seeded words of group 1 (storage/vocabulary.py)
CORE_ADJECTIVES_FIRST = 12


def count_reviews(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(review_items)).scalar_one())


def new_session(client: TestClient, base: str = "/api/v1", group_id: int = 1) -> dict:
    response = client.post(f"{base}/study-sessions", json={"group_id": group_id, "study_activity_id": 1})
    assert response.status_code == 201
    return response.json()


def review(client: TestClient, session_id: int, word_id: int, correct: bool, base: str = "/api/v1", **headers: str):
    return client.post(
        f"{base}/study-sessions/{session_id}/reviews", json={"word_id": word_id, "correct": correct}, headers=headers
    )


def test_a_review_is_201_with_location_and_reads_back(client: TestClient, engine: Engine, base: str):
    session = new_session(client, base)

    created = review(client, session["id"], 3, True, base)
    fetched = client.get(created.headers["location"])

    assert created.status_code == 201
    body = created.json()
    assert body["study_session_id"] == session["id"] and body["word_id"] == 3 and body["correct"] is True
    assert created.headers["location"] == f"{base}/study-sessions/{session['id']}/reviews/{body['id']}"
    assert (fetched.status_code, fetched.json()) == (200, body)
    assert count_reviews(engine) == 1


def test_the_session_counts_right_and_wrong_answers_one_and_in_the_list(client: TestClient):
    session = new_session(client)
    other = new_session(client)
    for word, correct in ((1, True), (2, False), (3, True), (1, True), (4, False)):
        assert review(client, session["id"], word, correct).status_code == 201
    assert review(client, other["id"], 5, False).status_code == 201

    one = client.get(f"/api/v1/study-sessions/{session['id']}").json()
    listed = {s["id"]: s for s in client.get("/api/v1/study-sessions").json()["items"]}

    assert (one["review_items_count"], one["correct_count"], one["wrong_count"]) == (5, 3, 2)
    assert listed[session["id"]] == one
    counts = listed[other["id"]]
    assert (counts["review_items_count"], counts["correct_count"], counts["wrong_count"]) == (1, 0, 1)
    assert new_session(client)["review_items_count"] == 0


def test_the_reviews_list_is_in_the_order_given_and_paged(client: TestClient):
    session = new_session(client)
    ids = [review(client, session["id"], word, word % 2 == 0).json()["id"] for word in (5, 6, 7)]

    first = client.get(f"/api/v1/study-sessions/{session['id']}/reviews?per_page=2").json()
    second = client.get(f"/api/v1/study-sessions/{session['id']}/reviews?per_page=2&page=2").json()

    assert [r["id"] for r in first["items"]] == ids[:2] and [r["id"] for r in second["items"]] == ids[2:]
    assert (first["total"], first["total_pages"]) == (3, 2)


def test_an_unknown_session_is_a_404_and_stores_nothing(client: TestClient, engine: Engine, base: str):
    posted = review(client, 424242, 1, True, base)
    listed = client.get(f"{base}/study-sessions/424242/reviews")
    one = client.get(f"{base}/study-sessions/424242/reviews/1")

    for response in (posted, listed, one):
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    assert "424242" in posted.json()["detail"]
    assert count_reviews(engine) == 0


@pytest.mark.parametrize(
    ("word_id", "detail"),
    [
        (999, "There is no word with id 999."),
        (CORE_ADJECTIVES_FIRST, "Word 12 is not in group 1, the group of study session {session}."),
    ],
)
def test_an_unknown_word_or_one_of_another_group_is_a_422_naming_it_and_stores_nothing(
    client: TestClient, engine: Engine, word_id: int, detail: str
):
    session = new_session(client, group_id=1)

    response = review(client, session["id"], word_id, True)

    assert response.status_code == 422
    assert response.json()["errors"] == [{"pointer": "/word_id", "detail": detail.format(session=session["id"])}]
    assert count_reviews(engine) == 0
    assert client.get(f"/api/v1/study-sessions/{session['id']}").json()["review_items_count"] == 0


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"word_id": 1}', {"content-type": "application/json"}, 400),
        (b'{"word_id": 1, "correct": "yes"}', {"content-type": "application/json"}, 400),
        (b'{"word_id": 1, "correct": true, "extra": 1}', {"content-type": "application/json"}, 400),
        (b'{"word_id": 1, "correct": tru', {"content-type": "application/json"}, 400),
        (b'{"word_id": 1, "correct": true}', {"content-type": "text/plain"}, 415),
        (b" " * 20000, {"content-type": "application/json"}, 413),
    ],
)
def test_a_malformed_review_is_refused_like_a_malformed_session(
    client: TestClient, engine: Engine, content: bytes, headers: dict, status: int
):
    session = new_session(client)

    response = client.post(f"/api/v1/study-sessions/{session['id']}/reviews", content=content, headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert count_reviews(engine) == 0


def test_a_review_needs_the_api_key_that_a_session_needs(keyed_client: TestClient, engine: Engine):
    key = {"X-API-Key": TEST_API_KEY}
    session = keyed_client.post("/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1}, headers=key)

    without = review(keyed_client, session.json()["id"], 1, True)
    keyed = review(keyed_client, session.json()["id"], 1, True, **key)

    assert (without.status_code, keyed.status_code) == (401, 201)
    assert count_reviews(engine) == 1


def test_a_review_with_an_idempotency_key_is_recorded_once(client: TestClient, engine: Engine):
    session = new_session(client)

    first = review(client, session["id"], 2, True, **{"Idempotency-Key": "answer-1"})
    again = review(client, session["id"], 2, True, **{"Idempotency-Key": "answer-1"})
    changed = review(client, session["id"], 2, False, **{"Idempotency-Key": "answer-1"})

    assert (first.status_code, again.status_code, changed.status_code) == (201, 201, 422)
    assert first.json() == again.json() and first.headers["location"] == again.headers["location"]
    assert count_reviews(engine) == 1


def test_the_same_key_and_answer_sent_to_another_session_is_a_422_not_the_first_sessions_answer(
    client: TestClient, engine: Engine
):
    first, second = new_session(client), new_session(client)

    answered = review(client, first["id"], 2, True, **{"Idempotency-Key": "answer-2"})
    elsewhere = review(client, second["id"], 2, True, **{"Idempotency-Key": "answer-2"})

    assert answered.status_code == 201
    assert elsewhere.status_code == 422
    assert elsewhere.json()["errors"][0]["parameter"] == "Idempotency-Key"
    assert count_reviews(engine) == 1
    assert client.get(f"/api/v1/study-sessions/{second['id']}").json()["review_items_count"] == 0


def test_deleting_reviews_brings_the_session_and_word_counts_down(client: TestClient, engine: Engine):
    session, other = new_session(client), new_session(client)
    given = [(session, 1, True), (session, 1, False), (session, 2, True), (session, 2, True), (other, 1, True)]
    ids = [review(client, s["id"], word, correct).json()["id"] for s, word, correct in given]

    with engine.begin() as conn:  # one statement taking several rows, then one taking one
        conn.execute(delete(review_items).where(review_items.c.id.in_([ids[0], ids[2]])))
        conn.execute(delete(review_items).where(review_items.c.id == ids[1]))
    read = client.get(f"/api/v1/study-sessions/{session['id']}")
    other_counts = client.get(f"/api/v1/study-sessions/{other['id']}").json()
    words = {w["id"]: w for w in client.get("/api/v1/groups/1/words?per_page=2").json()["items"]}
    listed = client.get(f"/api/v1/study-sessions/{session['id']}/reviews").json()

    assert read.status_code == 200
    counts = read.json()
    assert (counts["review_items_count"], counts["correct_count"], counts["wrong_count"]) == (1, 1, 0)
    assert (other_counts["review_items_count"], other_counts["correct_count"]) == (1, 1)
    assert (words[1]["correct_count"], words[1]["wrong_count"]) == (1, 0)
    assert (words[2]["correct_count"], words[2]["wrong_count"]) == (1, 0)
    assert (listed["total"], [r["id"] for r in listed["items"]]) == (1, [ids[3]])


def test_reviews_count_against_the_write_limit(settings: Settings, engine: Engine):
    limited = Settings(**{**settings.__dict__, "rate_limit_write": "3/minute"})
    with TestClient(create_app(limited, engine), raise_server_exceptions=False) as client:
        session = new_session(client)
        statuses = [review(client, session["id"], 1, True).status_code for _ in range(3)]

    assert statuses == [201, 201, 429]
    assert count_reviews(engine) == 2


def test_concurrent_reviews_into_one_session_are_all_counted(client: TestClient, engine: Engine):
    session = new_session(client)

    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda i: review(client, session["id"], 1 + i % 11, i % 3 == 0).status_code, range(60))
        )

    counts = client.get(f"/api/v1/study-sessions/{session['id']}").json()
    assert statuses == [201] * 60
    assert (counts["review_items_count"], counts["correct_count"], counts["wrong_count"]) == (60, 20, 40)
    assert count_reviews(engine) == 60


def test_a_groups_words_come_with_their_counts_across_every_session(client: TestClient):
    first, second = new_session(client), new_session(client)
    for session, word, correct in ((first, 1, True), (first, 1, False), (second, 1, True), (second, 2, False)):
        assert review(client, session["id"], word, correct).status_code == 201

    page = client.get("/api/v1/groups/1/words?per_page=2").json()
    rest = client.get("/api/v1/groups/1/words?per_page=100").json()

    assert [w["id"] for w in page["items"]] == [1, 2] and page["total"] == len(CORE_VERBS)
    eat, drink = page["items"]
    assert (eat["kanji"], eat["romaji"], eat["english"]) == ("食べる", "taberu", "to eat")
    assert eat["parts"] == [
        {"kanji": "食", "romaji": ["ta"]},
        {"kanji": "べ", "romaji": ["be"]},
        {"kanji": "る", "romaji": ["ru"]},
    ]
    assert (eat["correct_count"], eat["wrong_count"]) == (2, 1)
    assert (drink["correct_count"], drink["wrong_count"]) == (0, 1)
    assert all((w["correct_count"], w["wrong_count"]) == (0, 0) for w in rest["items"][2:])


def test_an_unknown_groups_words_are_a_404(client: TestClient, base: str):
    response = client.get(f"{base}/groups/99/words")

    assert response.status_code == 404 and "99" in response.json()["detail"]


def test_every_seeded_group_has_at_least_ten_words_whose_parts_spell_them(client: TestClient):
    for group in client.get("/api/v1/groups").json()["items"]:
        words = client.get(f"/api/v1/groups/{group['id']}/words?per_page=100").json()
        assert words["total"] >= 10, group
        for word in words["items"]:
            assert "".join(part["kanji"] for part in word["parts"]) == word["kanji"], word
            assert "".join("".join(part["romaji"]) for part in word["parts"]) == word["romaji"], word


def test_the_vocabulary_has_no_word_twice():
    words, memberships = vocabulary.rows()

    assert len({w["kanji"] for w in words}) == len(words)
    assert len({(m["group_id"], m["word_id"]) for m in memberships}) == len(memberships) == len(words)


@pytest.mark.live
def test_concurrent_reviews_from_two_servers_are_all_counted(tmp_path: Path, database_url: str, engine: Engine):
    with (
        service(tmp_path, database_url, GUNICORN, WORKERS="1") as (first, _),
        service(tmp_path, database_url, GUNICORN, WORKERS="1") as (second, _),
    ):
        session = httpx.post(f"{first}/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 2}).json()

        def answer(i: int) -> int:
            url = f"{(first, second)[i % 2]}/api/v1/study-sessions/{session['id']}/reviews"
            return httpx.post(url, json={"word_id": 1 + i % 11, "correct": i % 4 == 0}, timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(answer, range(100)))
        counts = httpx.get(f"{second}/api/v1/study-sessions/{session['id']}").json()

    assert statuses == [201] * 100
    assert (counts["review_items_count"], counts["correct_count"], counts["wrong_count"]) == (100, 25, 75)
    assert count_reviews(engine) == 100 and count_sessions(engine) == 1


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/study-sessions/1/reviews/abc", ["review_id"]),
        ("/study-sessions/abc/reviews/1", ["id"]),
        ("/study-sessions/x/reviews/y", ["id", "review_id"]),
        (f"/study-sessions/{2**63 - 1}/reviews/abc", ["review_id"]),  # 19 digits: a valid id
    ],
)
def test_a_path_parameter_that_is_not_a_number_is_a_400_naming_it_alone(client: TestClient, path: str, named: list):
    response = client.get(f"/api/v1{path}")

    assert response.status_code == 400
    assert [e["parameter"] for e in response.json()["errors"]] == named


def test_an_unknown_review_of_a_known_session_is_a_404_naming_both(client: TestClient):
    session = new_session(client)

    missing = client.get(f"/api/v1/study-sessions/{session['id']}/reviews/424242")

    assert missing.status_code == 404
    assert missing.json()["detail"] == f"Study session {session['id']} has no review item with id 424242."


def test_a_session_without_reviews_lists_an_empty_page_of_a_total_of_zero(client: TestClient):
    session = new_session(client)

    listed = client.get(f"/api/v1/study-sessions/{session['id']}/reviews")

    assert listed.status_code == 200
    body = listed.json()
    assert (body["items"], body["total"], body["total_pages"]) == ([], 0, 0)
