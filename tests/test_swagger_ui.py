"""Swagger UI's "Try it out" in a real browser (headless Chromium, driven by Playwright): each
Execute of the create operation, as the spec prefills it, makes a new study session."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.conftest import count_sessions
from tests.servers import chromium, playwright_sync_api, service

pytestmark = [pytest.mark.live, pytest.mark.backends("sqlite")]

CREATE = "#operations-study-sessions-create_study_session"


def test_try_it_out_executed_twice_on_create_makes_two_sessions(tmp_path: Path):
    browser_path = chromium()
    sync_playwright = playwright_sync_api().sync_playwright
    database_url = f"sqlite:///{tmp_path}/study.db"
    sent: list[dict[str, str]] = []

    with service(tmp_path, database_url, API_KEYS="") as (url, _server), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on(
                "request",
                lambda request: sent.append(request.headers) if request.method == "POST" else None,
            )
            page.goto(f"{url}/api/v1/ui/")
            page.click(f"{CREATE} .opblock-summary")
            page.click(f"{CREATE} .try-out__btn")
            statuses = []
            for _ in range(2):
                with page.expect_response(lambda r: r.request.method == "POST") as answer:
                    page.click(f"{CREATE} .execute")
                statuses.append(answer.value.status)
        finally:
            browser.close()

    assert statuses == [201, 201]
    assert [h.get("idempotency-key") for h in sent] == [None, None]
    assert len({h.get("x-request-id") for h in sent}) == 2 or [h.get("x-request-id") for h in sent] == [None, None]
    engine = create_engine(database_url)
    try:
        assert count_sessions(engine) == 2
    finally:
        engine.dispose()
