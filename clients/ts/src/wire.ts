// The service's wire types, as the OpenAPI document describes them (`schema.ts` is generated
// from it by `make client`; never edit it by hand). Everything else in the client is written
// against these names, so a change of the document that breaks the client fails its build.
import type { components } from "./schema.js";

type Schemas = components["schemas"];

export type SessionRequest = Schemas["SessionRequest"];
export type SessionView = Schemas["SessionView"];
export type PairSessionRequest = Schemas["PairSessionRequest"];
export type PairResult = Schemas["PairResult"];
export type ListSummary = Schemas["ListSummary"];
export type TokenMetadata = Schemas["TokenMetadata"];
export type BalanceView = Schemas["BalanceView"];
export type BatchView = Schemas["BatchView"];
export type ErrorBody = Schemas["ErrorBody"];
export type Health = Schemas["Health"];
export type OrderRequest = Schemas["OrderRequest"];
export type OrderView = Schemas["OrderView"];
export type OrdersView = Schemas["OrdersView"];
export type Permit2Terms = Schemas["Permit2Terms"];
export type OrderDeleted = Schemas["OrderDeleted"];
export type WebhookRequest = Schemas["WebhookRequest"];
export type WebhookCreated = Schemas["WebhookCreated"];
export type WebhookView = Schemas["WebhookView"];
export type WebhookDeleted = Schemas["WebhookDeleted"];
export type ReplayAccepted = Schemas["ReplayAccepted"];
export type Delivery = Schemas["Delivery"];

/** Every event of `GET /sse/{chain_id}/balances/{owner}`: event name -> JSON of its data. */
type SseEventData = Schemas["SseEventData"];
type KeysOfUnion<T> = T extends unknown ? keyof T : never;

/** The `event:` names the document lists. */
export type SseEventName = KeysOfUnion<SseEventData>;

/** The `data:` JSON of the event `Name`, as sent. */
export type SseData<Name extends SseEventName> = Extract<SseEventData, Record<Name, unknown>>[Name];
