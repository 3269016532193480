// Compiled (never run) by ./scripts/dev test with `tsc --noEmit`: the types generated from
// openapi/openapi.yaml must name every concept once and type what the service really sends.
import type { components, operations, paths } from "../../build/clients/typescript/schema";

type StudySession = components["schemas"]["StudySession"];
type StudySessionCreate = components["schemas"]["StudySessionCreate"];
type Problem = components["schemas"]["Problem"];
type Page = components["schemas"]["StudySessionPage"];

const create: StudySessionCreate = { group_id: 1, study_activity_id: 2, created_at: "2026-11-27T09:30:00+01:00" };

const created: operations["create_study_session"]["responses"][201]["content"]["application/json"] = {
  id: 42,
  group_id: 1,
  group_name: "Core Verbs",
  study_activity_id: 2,
  study_activity_name: "Flashcards",
  created_at: "2026-11-27T08:30:00Z",
  review_items_count: 0,
  correct_count: 0,
  wrong_count: 0,
};

const unknownGroup: operations["create_study_session"]["responses"][422]["content"]["application/problem+json"] = {
  type: "about:blank",
  title: "Unprocessable Content",
  status: 422,
  errors: [{ detail: "There is no group with id 999.", pointer: "/group_id" }],
};

const page: Page = { items: [created], total: 1, page: 1, per_page: 10, total_pages: 1 };

type ListQuery = NonNullable<paths["/study-sessions"]["get"]["parameters"]["query"]>;
const query: ListQuery = { page: 2, per_page: 100 };

// @ts-expect-error: study_activity_id is required
const missing: StudySessionCreate = { group_id: 1 };

// @ts-expect-error: the spec declares no such field, so a client cannot read one
const drift: StudySession = { ...created, learner: "x" };

function describe(problem: Problem): string {
  return `${problem.status} ${problem.title}: ${problem.detail ?? ""}`;
}

export { create, describe, drift, missing, page, query, unknownGroup };
