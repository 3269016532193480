// The npm client package's types: openapi-fetch's client over the spec's paths (schema.d.ts).
import type { Client, ClientOptions } from "openapi-fetch";
import type { paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

/** A client of the Study Sessions API whose every request and answer is typed by the spec. */
export type StudySessionsClient = Client<paths>;

/** A client of the Study Sessions API at `options.baseUrl` (for example http://127.0.0.1:5000/api/v1). */
export default function createClient(options?: ClientOptions): StudySessionsClient;
