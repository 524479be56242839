// The back-end client: the API key on every request, the orders and webhook routes by name,
// and deliveries verified (Standard Webhooks) then read into typed events.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { after, before, beforeEach, test } from "node:test";

import { ApiError, DeliveryVerifier, createBackendClient } from "../src/backend.js";
import { OWNER, PERMIT2_SPENDER, SPENDER, TOKEN, permit2UpdateData } from "./fakes.js";
import { LoopbackService } from "./server.js";

const service = new LoopbackService();
before(() => service.start());
after(() => service.stop());
beforeEach(() => (service.seen.length = 0));

test("every request carries the API key; orders and webhooks go to their routes", async () => {
  const client = createBackendClient({ baseUrl: service.base, apiKey: "lbk_test_key" });
  const order = {
    chainId: 31337,
    owner: OWNER,
    orderId: "0xabc",
    sellToken: TOKEN,
    sellAmount: "250",
    spender: SPENDER,
    validTo: 1,
    fillable: true,
    short: null,
    balanceShortfall: "0",
    allowanceShortfall: "0",
    blockNumber: 3,
  };
  service.answer = (r) => {
    if (r.url.endsWith("/webhooks")) return { status: 201, body: JSON.stringify({ id: "w1", secret: "whsec_x" }) };
    if (r.url.endsWith("/replay")) return { status: 202, body: '{"id":"w1","parkedCount":2}' };
    return { status: 200, body: JSON.stringify(order) };
  };
  await client.putOrder({ chainId: 31337, owner: OWNER, orderId: "0xabc", sellToken: TOKEN, sellAmount: "250", validTo: 1 });
  await client.getOrders({ chainId: 31337, owner: OWNER });
  await client.deleteOrder({ chainId: 31337, owner: OWNER, orderId: "0xabc" });
  const created = await client.createWebhook({
    chainId: 1,
    url: "https://hooks.example.com/balances",
    wallets: [OWNER],
    events: ["balance_update"],
  });
  assert.equal(created.secret, "whsec_x");
  await client.getWebhook({ chainId: 1, id: "w1" });
  assert.equal((await client.replayWebhook({ chainId: 1, id: "w1" })).parkedCount, 2);
  await client.deleteWebhook({ chainId: 1, id: "w1" });
  await client.getSession({ chainId: 1, owner: OWNER });
  assert.deepEqual(
    service.seen.map((r) => `${r.method} ${r.url.replace("/lambda-url/api", "")}`),
    [
      `PUT /31337/orders/${OWNER}/0xabc`,
      `GET /31337/orders/${OWNER}`,
      `DELETE /31337/orders/${OWNER}/0xabc`,
      "POST /1/webhooks",
      "GET /1/webhooks/w1",
      "POST /1/webhooks/w1/replay",
      "DELETE /1/webhooks/w1",
      `GET /1/sessions/${OWNER}`,
    ],
  );
  assert.ok(service.seen.every((r) => r.authorization === "Bearer lbk_test_key"));
  assert.deepEqual(JSON.parse(service.seen[0]?.body ?? ""), { sellToken: TOKEN, sellAmount: "250", validTo: 1 });
  assert.deepEqual(JSON.parse(service.seen[3]?.body ?? "").wallets, [OWNER]);
  assert.throws(() => createBackendClient({ baseUrl: service.base, apiKey: "" }), /apiKey/);

  service.answer = () => ({ status: 401, body: '{"code":"invalid_webhook_secret","message":"no"}' });
  await assert.rejects(client.getWebhook({ chainId: 1, id: "w1" }), (e: unknown) => e instanceof ApiError && e.status === 401);
});

// Signed independently of the library, as the service's README states the scheme.
const key = randomBytes(24);
const secret = `whsec_${key.toString("base64")}`;
function sign(id: string, timestamp: number, body: string): Record<string, string> {
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": `v1,${mac}` };
}

test("a delivery signed as documented is verified and read as a typed event", () => {
  const verifier = new DeliveryVerifier(secret);
  const body = JSON.stringify({
    id: "0000000000000000000000000004000000000000000000012345",
    type: "balance_update",
    subscriptionId: "3f",
    chainId: 1,
    owner: OWNER,
    data: { address: TOKEN, balance: "1500000", previousBalance: "1000000", blockNumber: 124, txHash: "0xabc" },
  });
  const now = Math.floor(Date.now() / 1000);
  const delivery = verifier.verify(body, sign("0000000000000000000000000004000000000000000000012345", now, body));
  assert.equal(delivery.owner, OWNER);
  assert.equal(delivery.event?.type, "balance_update");
  assert.ok(delivery.event?.type === "balance_update");
  assert.equal(delivery.event.balance, 1_500_000n);
  assert.equal(delivery.event.previousBalance, 1_000_000n);

  // A `Headers` and raw bytes do as well; a second signature (a rotation's) is accepted.
  const headers = new Headers(sign("id-2", now, body));
  headers.set("webhook-signature", `v1,${Buffer.alloc(32).toString("base64")} ${headers.get("webhook-signature")}`);
  assert.equal(verifier.verify(new TextEncoder().encode(body), headers).type, "balance_update");

  assert.throws(() => verifier.verify(body.replace("1500000", "9500000"), sign("id-3", now, body)), /signature/i);
  assert.throws(() => verifier.verify(body, sign("id-4", now - 600, body)), /timestamp/i);
  assert.throws(() => new DeliveryVerifier(`whsec_${randomBytes(24).toString("base64")}`).verify(body, sign("id-5", now, body)));
});

test("a Permit2 delivery is read as a typed permit2_allowance_update", () => {
  const verifier = new DeliveryVerifier(secret);
  const body = JSON.stringify({
    id: "0000000000000000000000000004000000000000000000012346",
    type: "permit2_allowance_update",
    subscriptionId: "3f",
    chainId: 1,
    owner: OWNER,
    data: permit2UpdateData(),
  });
  const now = Math.floor(Date.now() / 1000);
  const delivery = verifier.verify(body, sign("0000000000000000000000000004000000000000000000012346", now, body));
  assert.ok(delivery.event?.type === "permit2_allowance_update");
  assert.equal(delivery.event.spender, PERMIT2_SPENDER);
  assert.equal(delivery.event.amount, 1_000_000_000_000_000_000_000n);
  assert.equal(delivery.event.expired, true);
  assert.equal(delivery.event.previous?.expired, false);
  assert.equal(delivery.event.lastEventId, "0000000000000000000000000004000000000000000000012346");
});
