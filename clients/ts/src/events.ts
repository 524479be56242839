// The typed events of a balance stream: the wire's JSON with amounts as bigint and maps as
// `Map`s. Each event keeps the JSON it came from in `data`, so fields the service adds later
// reach the caller before this client knows them.
import { toAddress, type Address } from "./address.js";
import { parseAmount, parseOptionalAmount } from "./amount.js";
import type { ErrorCode } from "./errors.js";
import type { SseData, SseEventName, TokenMetadata } from "./wire.js";

/** A wallet on a chain: what each event of a multi-wallet stream names. */
export interface WalletPair {
  chainId: number;
  /** Lowercase 0x address. */
  owner: Address;
}

interface Positioned {
  /**
   * The stream position after this event (the SSE `Last-Event-ID`): the point a new stream
   * resumes from. `""` before the stream has given any.
   */
  lastEventId: string;
  /** On a multi-wallet stream (`GET /sse/balances`), the pair the event is about. */
  pair?: WalletPair;
  /**
   * Read by the polling fallback (`getBalances`) while no stream was live, not sent by the
   * stream: such an event has no position (`lastEventId` is `""`).
   */
  polled?: true;
}

/** `all_balances`: the wallet's whole state. Later events change it one value at a time. */
export interface AllBalancesEvent extends Positioned {
  type: "all_balances";
  blockNumber: number;
  /** token -> balance */
  balances: Map<Address, bigint>;
  /** token -> spender -> allowance */
  allowances: Map<Address, Map<Address, bigint>>;
  /**
   * token -> spender -> allowance inside Permit2, for the session's `permit2Spenders` (an
   * absent one was never set: zero amount, expiration and nonce). The token's own allowance
   * to Permit2 is in `allowances` under `PERMIT2`.
   */
  permit2: Map<Address, Map<Address, Permit2Allowance>>;
  /** token -> why its value could not be read */
  errors: Map<Address, string>;
  /** token -> symbol, name, decimals (where known) */
  tokens: Map<Address, TokenMetadata>;
  /** orderId -> the open order's fillability, judged on these values */
  orders: Map<string, OrderStatus>;
  data: SseData<"all_balances">;
}

/**
 * A wallet's values at a moment, read-only: the last `all_balances` with every later update
 * applied. `watch.current()` gives the same object until the next change, so it can be a
 * store's snapshot (React's `useSyncExternalStore`); never mutate it.
 */
export interface WalletSnapshot {
  readonly blockNumber: number;
  readonly balances: ReadonlyMap<Address, bigint>;
  readonly allowances: ReadonlyMap<Address, ReadonlyMap<Address, bigint>>;
  readonly permit2: ReadonlyMap<Address, ReadonlyMap<Address, Readonly<Permit2Allowance>>>;
  readonly errors: ReadonlyMap<Address, string>;
  readonly tokens: ReadonlyMap<Address, TokenMetadata>;
  readonly orders: ReadonlyMap<string, OrderStatus>;
  /** The stream position of the last event applied (`""` before any). */
  readonly lastEventId: string;
  /** On a multi-wallet stream, the pair. */
  readonly pair?: WalletPair | undefined;
  /** The last snapshot's JSON with the values brought up to date. */
  readonly data: SseData<"all_balances">;
}

/**
 * One Permit2 allowance (Permit2's `allowance(owner, token, spender)`) as of a block: what the
 * spender may move through Permit2, and until when.
 */
export interface Permit2Allowance {
  amount: bigint;
  /** Unix seconds; past it Permit2 refuses to spend `amount`. */
  expiration: number;
  /** The nonce the owner's next signed permit for this spender must carry. */
  nonce: number;
  /**
   * The block's time is past `expiration` and `amount` is not zero: nothing can be spent until
   * the owner approves again. The service sends the update when the first block past
   * `expiration` is processed.
   */
  expired: boolean;
}

/**
 * How an order's spender spends the token: `erc20`, the token's own allowance; `permit2`,
 * through Permit2 (the token's allowance to Permit2, then Permit2's unexpired one to the
 * spender).
 */
export type Approval = "erc20" | "permit2";

/** An open order's fillability (`PUT /{chain_id}/orders/{owner}/{order_id}`). */
export interface OrderStatus {
  orderId: string;
  sellToken: Address;
  /** What the order still sells. */
  sellAmount: bigint;
  spender: Address;
  approval: Approval;
  /** Unix seconds. */
  validTo: number;
  /** Balance and allowance (both layers, for `permit2`) cover `sellAmount`. */
  fillable: boolean;
  /** Which value is short (`allowance`: either allowance layer of a `permit2` order); `null` when fillable. */
  short: "balance" | "allowance" | "both" | null;
  balanceShortfall: bigint;
  allowanceShortfall: bigint;
  blockNumber: number;
}

/** An order was registered, or a change crossed its amount. */
export interface OrderStatusEvent extends Positioned, OrderStatus {
  type: "order_status";
  data: SseData<"order_status">;
}

export interface BalanceUpdateEvent extends Positioned {
  type: "balance_update";
  /** The token (`NATIVE_TOKEN` for the chain's coin). */
  address: Address;
  balance: bigint;
  /** `null` when the value was not known before (newly tracked). */
  previousBalance: bigint | null;
  blockNumber: number;
  txHash: string | null;
  data: SseData<"balance_update">;
}

export interface AllowanceUpdateEvent extends Positioned {
  type: "allowance_update";
  address: Address;
  spender: Address;
  allowance: bigint;
  previousAllowance: bigint | null;
  blockNumber: number;
  txHash: string | null;
  data: SseData<"allowance_update">;
}

/**
 * A Permit2 allowance changed: approved, permitted (a signed permit submitted), spent through
 * Permit2, locked down, its nonce moved, or its expiration passed (`expired` turns true, no
 * transaction). Its fields are the allowance after the change.
 */
export interface Permit2AllowanceUpdateEvent extends Positioned, Permit2Allowance {
  type: "permit2_allowance_update";
  /** The token. */
  address: Address;
  spender: Address;
  /** The allowance before; `null` when it was not tracked before. */
  previous: Permit2Allowance | null;
  blockNumber: number;
  txHash: string | null;
  data: SseData<"permit2_allowance_update">;
}

/** The stream is alive. */
export interface PingEvent extends Positioned {
  type: "ping";
  /** Server time, Unix seconds. */
  time: number;
  data: SseData<"ping">;
}

/** The position asked for is gone from the change feed: an `all_balances` follows. */
export interface ResyncEvent extends Positioned {
  type: "resync";
  code: ErrorCode;
  message: string;
  data: SseData<"resync">;
}

/** The server ends the stream for the reason given (e.g. `session_expired`). */
export interface StreamErrorEvent extends Positioned {
  type: "error";
  code: ErrorCode;
  message: string;
  data: SseData<"error">;
}

export type BalanceEvent =
  | AllBalancesEvent
  | BalanceUpdateEvent
  | AllowanceUpdateEvent
  | Permit2AllowanceUpdateEvent
  | OrderStatusEvent
  | PingEvent
  | ResyncEvent
  | StreamErrorEvent;

/** Thrown for an event whose data does not have the documented shape. */
export class EventDataError extends Error {
  constructor(
    readonly eventName: string,
    reason: string,
  ) {
    super(`unreadable ${eventName} event: ${reason}`);
    this.name = "EventDataError";
  }
}

type Parser = (data: unknown, lastEventId: string) => BalanceEvent;

// A `Record` over the document's event names: an event added to the document without a parser
// here fails the client's build (and so `make test`).
const PARSERS: Record<SseEventName, Parser> = {
  all_balances: (data, lastEventId) => {
    const d = object(data) as SseData<"all_balances">;
    const allowances = new Map<Address, Map<Address, bigint>>();
    for (const [token, bySpender] of entries(d.allowances, "allowances")) {
      allowances.set(toAddress(token), mapValues(bySpender, parseAmount, "allowances"));
    }
    const permit2 = new Map<Address, Map<Address, Permit2Allowance>>();
    for (const [token, bySpender] of entries(d.permit2 ?? {}, "permit2")) {
      permit2.set(toAddress(token), mapValues(bySpender, permit2Allowance, "permit2"));
    }
    return {
      type: "all_balances",
      lastEventId,
      blockNumber: blockNumber(d.blockNumber),
      balances: mapValues(d.balances, parseAmount, "balances"),
      allowances,
      permit2,
      errors: mapValues(d.errors ?? {}, text, "errors"),
      tokens: mapValues(d.tokens ?? {}, metadata, "tokens"),
      orders: new Map((d.orders ?? []).map((o) => [text(o.orderId), orderStatus(o)])),
      data: d,
    };
  },
  order_status: (data, lastEventId) => {
    const d = object(data) as SseData<"order_status">;
    return { type: "order_status", lastEventId, ...orderStatus(d), data: d };
  },
  balance_update: (data, lastEventId) => {
    const d = object(data) as SseData<"balance_update">;
    return {
      type: "balance_update",
      lastEventId,
      address: toAddress(d.address),
      balance: parseAmount(d.balance),
      previousBalance: parseOptionalAmount(d.previousBalance),
      blockNumber: blockNumber(d.blockNumber),
      txHash: d.txHash == null ? null : text(d.txHash),
      data: d,
    };
  },
  allowance_update: (data, lastEventId) => {
    const d = object(data) as SseData<"allowance_update">;
    return {
      type: "allowance_update",
      lastEventId,
      address: toAddress(d.address),
      spender: toAddress(d.spender),
      allowance: parseAmount(d.allowance),
      previousAllowance: parseOptionalAmount(d.previousAllowance),
      blockNumber: blockNumber(d.blockNumber),
      txHash: d.txHash == null ? null : text(d.txHash),
      data: d,
    };
  },
  permit2_allowance_update: (data, lastEventId) => {
    const d = object(data) as SseData<"permit2_allowance_update">;
    return {
      type: "permit2_allowance_update",
      lastEventId,
      address: toAddress(d.address),
      spender: toAddress(d.spender),
      ...permit2Allowance(d),
      previous: d.previous == null ? null : permit2Allowance(d.previous),
      blockNumber: blockNumber(d.blockNumber),
      txHash: d.txHash == null ? null : text(d.txHash),
      data: d,
    };
  },
  ping: (data, lastEventId) => {
    const d = object(data) as SseData<"ping">;
    return { type: "ping", lastEventId, time: blockNumber(d.time), data: d };
  },
  resync: (data, lastEventId) => {
    const d = object(data) as SseData<"resync">;
    return { type: "resync", lastEventId, code: text(d.code) as ErrorCode, message: text(d.message), data: d };
  },
  error: (data, lastEventId) => {
    const d = object(data) as SseData<"error">;
    return { type: "error", lastEventId, code: text(d.code) as ErrorCode, message: text(d.message), data: d };
  },
};

/** The event names this client reads: every one the OpenAPI document lists. */
export const EVENT_NAMES = Object.keys(PARSERS) as readonly SseEventName[];

/**
 * The typed event for an SSE message: its `event:` name, `data:` text and the stream's
 * `Last-Event-ID` after it. `null` for a name this client does not know (a newer server);
 * throws [`EventDataError`] for data that is not the documented shape.
 */
export function parseEvent(name: string, dataText: string, lastEventId: string): BalanceEvent | null {
  if (!Object.prototype.hasOwnProperty.call(PARSERS, name)) return null;
  let data: unknown;
  try {
    data = JSON.parse(dataText);
  } catch {
    throw new EventDataError(name, "data is not JSON");
  }
  return parseEventData(name as SseEventName, data, lastEventId);
}

/** [`parseEvent`] for data already parsed from JSON (a webhook delivery's `data`). */
export function parseEventData(name: SseEventName, data: unknown, lastEventId: string): BalanceEvent {
  const parse = PARSERS[name];
  try {
    const event = parse(data, lastEventId);
    const d = data as { chainId?: unknown; owner?: unknown };
    if (d.chainId !== undefined || d.owner !== undefined) {
      event.pair = { chainId: blockNumber(d.chainId), owner: toAddress(d.owner) };
    }
    return event;
  } catch (e) {
    throw new EventDataError(name, e instanceof Error ? e.message : String(e));
  }
}

function object(value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("not a JSON object");
  }
  return value as Record<string, unknown>;
}

function entries(value: unknown, field: string): [string, unknown][] {
  try {
    return Object.entries(object(value));
  } catch {
    throw new TypeError(`${field} is not an object`);
  }
}

/** A JSON object keyed by address as a `Map` keyed by lowercase `Address`. */
function mapValues<T>(value: unknown, parse: (v: unknown) => T, field: string): Map<Address, T> {
  const map = new Map<Address, T>();
  for (const [key, v] of entries(value, field)) map.set(toAddress(key), parse(v));
  return map;
}

function text(value: unknown): string {
  if (typeof value !== "string") throw new TypeError(`not a string: ${JSON.stringify(value)}`);
  return value;
}

function blockNumber(value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`not a block number: ${JSON.stringify(value)}`);
  }
  return value;
}

/** A non-negative whole number of JSON (Unix seconds, a nonce). */
function whole(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`${field} is not a non-negative integer: ${JSON.stringify(value)}`);
  }
  return value;
}

function permit2Allowance(value: unknown): Permit2Allowance {
  const p = object(value);
  if (typeof p["expired"] !== "boolean") throw new TypeError("expired is not a boolean");
  return {
    amount: parseAmount(p["amount"]),
    expiration: whole(p["expiration"], "expiration"),
    nonce: whole(p["nonce"], "nonce"),
    expired: p["expired"],
  };
}

const SHORT_SIDES = ["balance", "allowance", "both"] as const;
const APPROVALS: readonly Approval[] = ["erc20", "permit2"];

function orderStatus(value: unknown): OrderStatus {
  const o = object(value);
  const short = o["short"];
  if (short !== null && !SHORT_SIDES.includes(short as (typeof SHORT_SIDES)[number])) {
    throw new TypeError(`short is not balance, allowance, both or null: ${JSON.stringify(short)}`);
  }
  if (typeof o["fillable"] !== "boolean") throw new TypeError("fillable is not a boolean");
  // Absent from what a service older than Permit2 support stored (a webhook retried across an
  // upgrade): its orders were all `erc20`.
  const approval = o["approval"] ?? "erc20";
  if (!APPROVALS.includes(approval as Approval)) {
    throw new TypeError(`approval is not erc20 or permit2: ${JSON.stringify(approval)}`);
  }
  return {
    orderId: text(o["orderId"]),
    sellToken: toAddress(o["sellToken"]),
    sellAmount: parseAmount(o["sellAmount"]),
    spender: toAddress(o["spender"]),
    approval: approval as Approval,
    validTo: blockNumber(o["validTo"]),
    fillable: o["fillable"],
    short: short as OrderStatus["short"],
    balanceShortfall: parseAmount(o["balanceShortfall"]),
    allowanceShortfall: parseAmount(o["allowanceShortfall"]),
    blockNumber: blockNumber(o["blockNumber"]),
  };
}

function metadata(value: unknown): TokenMetadata {
  const m = object(value);
  const decimals = m["decimals"];
  if (typeof decimals !== "number" || !Number.isInteger(decimals) || decimals < 0 || decimals > 255) {
    throw new TypeError(`decimals out of range: ${JSON.stringify(decimals)}`);
  }
  return { symbol: text(m["symbol"]), name: text(m["name"]), decimals };
}
