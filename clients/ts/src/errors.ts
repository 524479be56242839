// How a REST call fails: `ApiError` for an answer other than 2xx, with the service's code from
// the closed set the OpenAPI document lists (`ErrorCode`), plus the two this client names
// itself when the answer is not the service's JSON.
import type { components } from "./schema.js";

/**
 * Every code the service answers with (generated from the OpenAPI document's `ErrorCode`),
 * and the client's own: `http_<status>` for an error answer that is not the service's JSON (a
 * proxy's page, say), `invalid_answer` for a 2xx answer that is not JSON. A newer service may
 * send a code this version does not list; it is passed on as it came.
 */
export type ErrorCode = components["schemas"]["ErrorCode"] | `http_${number}` | "invalid_answer";

/** An answer other than 2xx, with the service's `{"code","message"}`. */
export class ApiError extends Error {
  constructor(
    /** HTTP status. */
    readonly status: number,
    /** Stable, machine-readable: `session_not_found`, `rate_limited`, `invalid_owner`, … */
    readonly code: ErrorCode,
    message: string,
    /** The answer's `Retry-After`, in ms, when it had one (`429`, `503`). */
    readonly retryAfterMs: number | null = null,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = "ApiError";
  }
}
