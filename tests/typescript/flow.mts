// Run by tests/test_typescript_client.py under Node, in a fresh npm project where the built client
// package (./scripts/dev client) is installed: it drives the live service through a study session's
// whole flow.
import createClient from "study-sessions-client";

declare const process: { argv: string[]; exit(code: number): never };

const [baseUrl, apiKey] = process.argv.slice(2);
const client = createClient({ baseUrl, headers: { "X-API-Key": apiKey } });

function check(holds: boolean, what: string, seen: unknown): void {
  if (!holds) {
    console.error(`FAILED: ${what}: ${JSON.stringify(seen)}`);
    process.exit(1);
  }
}

const created = await client.POST("/study-sessions", { body: { group_id: 1, study_activity_id: 2 } });
check(created.response.status === 201 && created.data !== undefined, "create a session", created.error);
const id = created.data!.id;
check(created.response.headers.get("location") === `/api/v1/study-sessions/${id}`, "its Location", id);

const answers: Array<[number, boolean]> = [[1, true], [2, false], [3, true]];
for (const [word_id, correct] of answers) {
  const posted = await client.POST("/study-sessions/{id}/reviews", {
    params: { path: { id } },
    body: { word_id, correct },
  });
  check(posted.response.status === 201 && posted.data?.word_id === word_id, `review word ${word_id}`, posted.error);
}

const session = await client.GET("/study-sessions/{id}", { params: { path: { id } } });
const counts = session.data && [session.data.review_items_count, session.data.correct_count, session.data.wrong_count];
check(JSON.stringify(counts) === "[3,2,1]", "the session's counts", session.data);

const listed = await client.GET("/study-sessions/{id}/reviews", { params: { path: { id }, query: { per_page: 2 } } });
check(listed.data?.total === 3 && listed.data.items.length === 2, "the reviews, paged", listed.data);

const refused = await client.POST("/study-sessions/{id}/reviews", {
  params: { path: { id } },
  body: { word_id: 12, correct: true },
});
check(refused.response.status === 422 && refused.error?.errors?.[0]?.pointer === "/word_id", "a problem", refused.error);

const missing = await client.GET("/study-sessions/{id}", { params: { path: { id: 987654 } } });
check(missing.response.status === 404 && missing.error?.status === 404, "a 404 problem", missing.error);

console.log(JSON.stringify({ session: session.data, problem: refused.error }));
