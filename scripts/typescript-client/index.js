// The npm client package's code, copied into build/clients/typescript/ by ./scripts/dev client:
// openapi-fetch, typed (index.d.ts) by the paths generated from the spec (schema.d.ts).
import createFetchClient from "openapi-fetch";

/** A client of the Study Sessions API at `options.baseUrl` (for example http://127.0.0.1:5000/api/v1). */
export default function createClient(options) {
  return createFetchClient(options);
}
