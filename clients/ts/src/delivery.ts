// A webhook delivery, verified: the Standard Webhooks signature checked by the `standardwebhooks`
// library (the scheme's reference implementation: HMAC-SHA256 over id, timestamp and body, any
// of several signatures, a 5-minute replay window) before the body is trusted, then read into
// the same typed events the stream gives.
import { Webhook } from "standardwebhooks";

import { toAddress, type Address } from "./address.js";
import {
  parseEventData,
  type AllowanceUpdateEvent,
  type BalanceUpdateEvent,
  type OrderStatusEvent,
  type Permit2AllowanceUpdateEvent,
} from "./events.js";
import type { Delivery } from "./wire.js";

/** The request's headers: a `Headers`, or Node's `IncomingHttpHeaders`. */
export type DeliveryHeaders = Headers | Record<string, string | string[] | undefined>;

/** A verified delivery: the body's fields, and its change as a typed event. */
export interface WebhookDelivery {
  /** The idempotency id (= `webhook-id`, = the change's SSE id): dedupe by it. */
  id: string;
  type: string;
  subscriptionId: string;
  chainId: number;
  owner: Address;
  /** The change, amounts as bigint; `null` for a kind this client does not know. */
  event: BalanceUpdateEvent | AllowanceUpdateEvent | Permit2AllowanceUpdateEvent | OrderStatusEvent | null;
  /** The body as sent. */
  body: Delivery;
}

const KINDS = ["balance_update", "allowance_update", "permit2_allowance_update", "order_status"] as const;

export class DeliveryVerifier {
  readonly #webhook: Webhook;

  /** `secret`: the subscription's `whsec_…` signing secret. */
  constructor(secret: string) {
    this.#webhook = new Webhook(secret);
  }

  /**
   * The delivery in `body` (the raw bytes as received: verify before parsing), if its
   * signature and timestamp are good; throws otherwise (`WebhookVerificationError`, or a
   * `TypeError` for a signed body of the wrong shape).
   */
  verify(body: string | Uint8Array, headers: DeliveryHeaders): WebhookDelivery {
    const delivery = this.#webhook.verify(body, plainHeaders(headers)) as Delivery;
    if (typeof delivery !== "object" || delivery === null) throw new TypeError("the delivery is not a JSON object");
    const kind = KINDS.find((k) => k === delivery.type);
    const event = kind ? (parseEventData(kind, delivery.data, delivery.id) as WebhookDelivery["event"]) : null;
    return {
      id: String(delivery.id),
      type: String(delivery.type),
      subscriptionId: String(delivery.subscriptionId),
      chainId: Number(delivery.chainId),
      owner: toAddress(delivery.owner),
      event,
      body: delivery,
    };
  }
}

function plainHeaders(headers: DeliveryHeaders): Record<string, string> {
  const plain: Record<string, string> = {};
  if (typeof Headers !== "undefined" && headers instanceof Headers) {
    headers.forEach((value, name) => (plain[name.toLowerCase()] = value));
    return plain;
  }
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (value === undefined) continue;
    plain[name.toLowerCase()] = Array.isArray(value) ? value.join(" ") : value;
  }
  return plain;
}
