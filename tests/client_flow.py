"""Run in a fresh virtual environment where the built client wheel is installed (tests/test_live.py):
the installed `study_sessions_client` drives the live service through the whole flow, then prints
where it was imported from and its version, as JSON.

    python tests/client_flow.py BASE_URL API_KEY

Only the standard library and the installed client are imported here: nothing of the project's."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any


def main() -> None:
    import study_sessions_client

    base_url, api_key = sys.argv[1:3]
    client = study_sessions_client.AuthenticatedClient(
        base_url=base_url, token=api_key, prefix="", auth_header_name="X-API-Key"
    )
    drive(client, study_sessions_client.Client(base_url=base_url))
    print(json.dumps({"module": study_sessions_client.__file__, "version": version("study-sessions-client")}))


def drive(client: Any, anonymous: Any) -> None:
    from study_sessions_client.api.groups import list_groups
    from study_sessions_client.api.study_activities import list_study_activities
    from study_sessions_client.api.study_sessions import create_study_session, get_study_session, list_study_sessions
    from study_sessions_client.models import GroupPage, Problem, StudyActivityPage, StudySession, StudySessionCreate

    groups = list_groups.sync(client=client)
    activities = list_study_activities.sync(client=client, per_page=100)
    assert isinstance(groups, GroupPage) and isinstance(activities, StudyActivityPage)
    group, activity = groups.items[0], activities.items[-1]

    created = create_study_session.sync_detailed(
        client=client, body=StudySessionCreate(group_id=group.id, study_activity_id=activity.id)
    )
    assert created.status_code == 201 and isinstance(created.parsed, StudySession)
    session = created.parsed
    assert (session.group_name, session.study_activity_name) == (group.name, activity.name)

    location = created.headers["location"]
    assert location == f"/api/v1/study-sessions/{session.id}"
    session_id = int(location.rsplit("/", 1)[1])
    fetched = get_study_session.sync(client=client, id=session_id)
    assert fetched == session

    listed = list_study_sessions.sync(client=client, per_page=100)
    assert not isinstance(listed, Problem) and listed is not None
    assert session.id in [s.id for s in listed.items]

    refused = create_study_session.sync_detailed(
        client=client, body=StudySessionCreate(group_id=987654, study_activity_id=activity.id)
    )
    assert refused.status_code == 422
    problem = refused.parsed
    assert isinstance(problem, Problem)
    assert problem.status == 422 and problem.title == "Unprocessable Content"
    assert [(e.pointer, e.detail) for e in problem.errors] == [("/group_id", "There is no group with id 987654.")]

    missing = get_study_session.sync(client=client, id=987654)
    assert isinstance(missing, Problem) and missing.status == 404

    from study_sessions_client.api.reviews import create_review, list_reviews
    from study_sessions_client.models import ReviewCreate, ReviewItem

    reviewed = [
        create_review.sync(client=client, id=session.id, body=ReviewCreate(word_id=word, correct=correct))
        for word, correct in ((1, True), (2, False))
    ]
    assert all(isinstance(r, ReviewItem) for r in reviewed)
    counted = get_study_session.sync(client=client, id=session.id)
    assert isinstance(counted, StudySession)
    assert (counted.review_items_count, counted.correct_count, counted.wrong_count) == (2, 1, 1)
    reviews = list_reviews.sync(client=client, id=session.id)
    assert reviews is not None and not isinstance(reviews, Problem) and reviews.total == 2
    outside = create_review.sync(client=client, id=session.id, body=ReviewCreate(word_id=40, correct=True))
    assert isinstance(outside, Problem) and outside.status == 422 and outside.errors[0].pointer == "/word_id"

    unauthorized = create_study_session.sync_detailed(
        client=anonymous, body=StudySessionCreate(group_id=1, study_activity_id=1)
    )
    assert unauthorized.status_code == 401 and isinstance(unauthorized.parsed, Problem)
    assert unauthorized.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'

    body = StudySessionCreate(group_id=group.id, study_activity_id=activity.id)
    first = create_study_session.sync_detailed(client=client, body=body, idempotency_key="client-retry")
    replayed = create_study_session.sync_detailed(client=client, body=body, idempotency_key="client-retry")
    assert first.status_code == replayed.status_code == 201
    assert isinstance(replayed.parsed, StudySession) and replayed.parsed == first.parsed
    assert replayed.headers["location"] == first.headers["location"]

    # The quota, 7 writes a minute for this key, is used up by now: a create, the 422, three
    # reviews, a create and its replay.
    throttled = create_study_session.sync_detailed(client=client, body=body)
    assert throttled.status_code == 429
    assert isinstance(throttled.parsed, Problem) and throttled.parsed.status == 429
    assert int(throttled.headers["retry-after"]) >= 1 and throttled.headers["ratelimit"].startswith('"write";r=0')


if __name__ == "__main__":
    main()
