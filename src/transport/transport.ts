/**
 * How updates reach the bot: long polling (`polling_transport.ts`, alone or behind the
 * polling leader lease) or a webhook (`webhook.ts`). A transport starts once the bot knows
 * itself, reports its health, and at a stop ends the intake, lets the updates in flight
 * finish and tells Telegram which ones did; the rest come again after the restart.
 */
import type { Api } from "grammy";
import type { Check } from "../health.ts";
import type { DrainResult } from "./scheduler.ts";

/** One way of receiving updates; see the module documentation. */
export interface Transport {
  /** `polling` or `webhook`, for logs. */
  readonly mode: "polling" | "webhook";
  /** Health checks by name (`component:measurement`). */
  readonly checks: Readonly<Record<string, Check>>;
  /** Settles when the transport died for good (e.g. the token was revoked while polling). */
  readonly failed: Promise<Error>;
  /** Starts receiving `allowedUpdates` through `api`; resolves once updates can arrive. */
  start(api: Api, allowedUpdates: readonly string[]): Promise<void>;
  /**
   * Ends the intake, waits (through `drain`) for the updates in flight and confirms the
   * finished ones to Telegram. Calling it again returns the same promise.
   */
  stop(drain: () => Promise<DrainResult>): Promise<DrainResult>;
}
