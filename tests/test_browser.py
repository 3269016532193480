"""CORS in a real browser: headless Chromium opens one page from an origin that CORS_ORIGINS names
and the same page from one it does not, and the page's script calls the service (another origin,
so every call is cross-origin, and preflighted: JSON and X-Request-ID are not CORS-safelisted)."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.settings import DEFAULT_CORS_ORIGINS, Settings
from tests.servers import chromium, service

pytestmark = [pytest.mark.live, pytest.mark.backends("sqlite")]

PORTAL_PORT = 3000
"""The portal's dev server, whose origin the default CORS_ORIGINS names."""
REQUEST_ID = "browser-cors-1"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # as root it will not start otherwise; the page is our own
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    # Any host name but localhost fails to resolve: the browser reaches nothing off this machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    # --dump-dom waits for this much virtual time, which stands still while fetches are pending.
    "--virtual-time-budget=10000",
)

PAGE = """<!doctype html>
<html>
<body>
<pre id="result"></pre>
<script>
const api = new URLSearchParams(location.search).get("api") + "/api/v1";

// What the script can read of one POST, or {blocked: true}: fetch() rejects with a TypeError,
// saying no more, when CORS refuses (the preflight, or the response).
async function post(body, headers) {
  let response;
  try {
    response = await fetch(api + "/study-sessions", {
      method: "POST",
      headers: {"Content-Type": "application/json", ...headers},
      body: JSON.stringify(body),
    });
  } catch (error) {
    if (error instanceof TypeError) return {blocked: true, error: String(error)};
    throw error;
  }
  const problem = await response.json();
  return {
    status: response.status,
    id: problem.id,
    title: problem.title,
    errors: problem.errors,
    location: response.headers.get("Location"),
    requestId: response.headers.get("X-Request-ID"),
    server: response.headers.get("Server"),
  };
}

(async () => {
  const result = {};
  // A no-cors GET is sent whatever the origin and its answer stays opaque: it tells a refusal
  // by CORS from a service that cannot be reached at all.
  try {
    result.reachable = (await fetch(api + "/groups", {mode: "no-cors"})).type;
  } catch (error) {
    result.reachable = String(error);
  }
  result.created = await post({group_id: 1, study_activity_id: 1}, {"X-Request-ID": "REQUEST_ID"});
  result.invalid = await post({group_id: "x"}, {});
  return result;
})().catch((error) => ({failed: String(error)})).then((result) => {
  document.getElementById("result").textContent = JSON.stringify(result);
});
</script>
</body>
</html>
""".replace("REQUEST_ID", REQUEST_ID).encode()


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output is the browser's result, not its requests


@contextmanager
def serving_page(port: int = 0) -> Iterator[str]:
    """PAGE on 127.0.0.1:`port` (a free port if 0) from a thread; its origin, by name as a browser
    has it. Raises OSError if the port is taken."""
    server = ThreadingHTTPServer(("127.0.0.1", port), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def open_page(browser: str, origin: str, api: str, folder: Path) -> dict[str, Any]:
    """What PAGE, opened from `origin` in headless Chromium with a new profile, wrote into #result
    once its fetches had settled. Chromium's log is `folder`/chromium-PORT.log."""
    log = folder / f"chromium-{origin.rsplit(':', 1)[1]}.log"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", f"{origin}/?api={api}"]
        # Its own session, so that the browser's helper processes are stopped with it.
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            dom, errors = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            dom, errors = process.communicate(timeout=10)
            log.write_text(errors)
            pytest.fail(f"chromium did not finish within 60 s on {origin}: {errors[-3000:]}")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    log.write_text(errors)
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.DOTALL)
    assert process.returncode == 0 and found and found.group(1), (
        f"chromium exited {process.returncode} before the page wrote its result:\n{dom[-3000:]}\n{errors[-3000:]}"
    )
    result = dict(json.loads(html.unescape(found.group(1))))
    assert "failed" not in result, result  # the script itself threw
    return result


def test_a_browser_reads_the_service_from_an_allowed_origin_and_cannot_call_it_from_another(
    tmp_path: Path, database_url: str
):
    browser = chromium()
    with ExitStack() as stack:
        try:
            allowed = stack.enter_context(serving_page(PORTAL_PORT))
            cors_origins = DEFAULT_CORS_ORIGINS
        except OSError:  # port 3000 is someone else's (a dev server): the service names ours instead
            allowed = stack.enter_context(serving_page())
            cors_origins = allowed
        refused = stack.enter_context(serving_page())
        named = Settings.from_env({"CORS_ORIGINS": cors_origins}).cors_origins
        assert allowed in named and refused not in named
        url, _ = stack.enter_context(service(tmp_path, database_url, CORS_ORIGINS=cors_origins))

        from_allowed = open_page(browser, allowed, url, tmp_path)
        from_refused = open_page(browser, refused, url, tmp_path)
        stored = httpx.get(f"{url}/api/v1/study-sessions", timeout=10).json()

    created, invalid = from_allowed["created"], from_allowed["invalid"]
    assert from_allowed["reachable"] == "opaque", from_allowed
    assert created["status"] == 201, from_allowed
    assert isinstance(created["id"], int)
    assert created["location"] == f"/api/v1/study-sessions/{created['id']}"  # exposed by the service
    assert created["requestId"] == REQUEST_ID
    assert created["server"] is None  # not exposed, so the browser keeps it from the script
    assert invalid["status"] == 400, from_allowed
    assert invalid["title"] == "Bad Request"
    assert "/group_id" in [error.get("pointer") for error in invalid["errors"]], invalid

    # The service answers the refused page's no-cors GET, but refuses both preflights.
    assert from_refused["reachable"] == "opaque", from_refused
    assert from_refused["created"]["blocked"] is True, from_refused
    assert from_refused["invalid"]["blocked"] is True, from_refused

    # A refused preflight means the POST behind it is never sent: the allowed page's is all there is.
    assert stored["total"] == 1, stored
    assert [(s["id"], s["group_id"], s["study_activity_id"]) for s in stored["items"]] == [(created["id"], 1, 1)]
