/**
 * The webhook transport: Telegram POSTs each update to `WEBHOOK_URL`'s path. The handler checks
 * the secret, the method, the size and the JSON, then answers 200 only once the update has
 * been handled, so that Telegram re-sends anything a crash interrupted. A body that is JSON
 * with a numeric `update_id` always gets 200, even when the update is malformed (it is
 * dropped, logged and counted): an error answer would only make Telegram send it again.
 *
 * The 200 may carry one Bot API call for Telegram to make ("reply to the webhook"): the first call
 * of the update whose method the bot allows for it (`WEBHOOK_REPLY_METHODS` in
 * `bot/pipeline.ts`), which saves that call's own request. Telegram makes it only if the 200
 * arrives, so it is safe exactly for calls whose result nobody reads and that need no retry.
 */
import type { Api } from "grammy";
import type { Update } from "grammy/types";
import type { WebhookConfig } from "../config.ts";
import { webhookCheck } from "../bot/telegram_check.ts";
import { checkUpdate } from "../bot/update_check.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Startup } from "../startup.ts";
import { secretMatcher } from "../util/secure_compare.ts";
import { parseJson, readLimited } from "./webhook_body.ts";
import type { DrainResult, UpdateScheduler } from "./scheduler.ts";
import type { Transport } from "./transport.ts";

/** Where a handled update's webhook reply goes: grammY's `webhookReplyEnvelope`. */
export interface WebhookReplyEnvelope {
  send(payload: string): Promise<void>;
}

/** The envelope of each update received by a webhook handler while it is being handled. */
const envelopes = new WeakMap<Update, WebhookReplyEnvelope>();

/**
 * The envelope for `update`'s webhook reply when it came through a webhook handler, for
 * `bot.handleUpdate(update, envelope)`; undefined otherwise (polling).
 */
export function webhookReplyOf(update: Update): WebhookReplyEnvelope | undefined {
  return envelopes.get(update);
}

/** Largest webhook body accepted; real updates are a few kilobytes. */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;

/** Options of {@link webhookHandler}. */
export interface WebhookHandlerOptions {
  /** The expected `X-Telegram-Bot-Api-Secret-Token`. */
  secret: string;
  /** Runs accepted updates. */
  scheduler: Pick<UpdateScheduler, "schedule">;
  /** False once a stop began: Telegram is told to come back later. */
  accepting: () => boolean;
  /** Where refusals are logged. */
  log: Logger;
  /** Refusal and drop counters. */
  metrics: Pick<Metrics, "webhookRejected" | "updatesDropped">;
  /** Body size limit in bytes. @default MAX_WEBHOOK_BODY_BYTES */
  maxBodyBytes?: number;
  /** Longest time to receive the whole body, in ms. @default 30000 */
  bodyTimeoutMs?: number;
  /**
   * Whether the server hands over requests whose body it has already read whole, within its
   * own size limit and time (the program's HTTP server does): the body is then taken at once
   * instead of through a guarded stream reader, which cost more than the rest of the request's
   * parsing. @default false
   */
  buffered?: boolean;
}

/**
 * The webhook as an HTTP server serves it straight from its parser, without WHATWG objects: the
 * shape of the program's server's `DirectRoute` (`src/http/server_types.ts`; HTTP is a layer of
 * its own that only the entry point joins to the rest, so the shape is spelled here too).
 */
export interface WebhookRoute {
  path: string;
  handler(request: {
    method: string;
    /** The first value of a (lower-case) header field, or null. */
    header(name: string): string | null;
    /** The whole body, read within the server's limits. */
    body: Uint8Array;
  }): Promise<{ status: number; headers: readonly (readonly [string, string])[]; body: string }>;
}

/** A webhook request, whether it came as a WHATWG Request or straight from the HTTP server. */
interface WebhookInput {
  method: string;
  /** The first value of a (lower-case) header field, or null. */
  header(name: string): string | null;
  /** The whole body (its size is checked here), or why it could not be read. */
  body(): Promise<Uint8Array | "too_large" | "timeout">;
  /** Discards a body that will not be read. */
  discard(): Promise<void>;
}

/** A webhook answer: always JSON. */
interface WebhookOutput {
  status: number;
  body: string;
  /** `Retry-After` for a 503. */
  retryAfter?: string;
}

const JSON_TYPE = ["content-type", "application/json"] as const;
const OK = JSON.stringify({ ok: true });
const DROPPED = JSON.stringify({ ok: true, dropped: true });

/** The webhook's logic, shared by {@link webhookHandler} and {@link webhookRoute}. */
function webhookCore(
  options: WebhookHandlerOptions,
): (input: WebhookInput) => Promise<WebhookOutput> {
  const { scheduler, accepting, log, metrics } = options;
  const limit = options.maxBodyBytes ?? MAX_WEBHOOK_BODY_BYTES;
  const isSecret = secretMatcher(options.secret);
  const refuse = async (input: WebhookInput, status: number, message: string) => {
    metrics.webhookRejected.inc({ status: String(status) });
    await input.discard().catch(() => {});
    const output: WebhookOutput = { status, body: JSON.stringify({ ok: false, error: message }) };
    if (status === 503) output.retryAfter = "5";
    return output;
  };
  return async function webhook(input) {
    const given = input.header("x-telegram-bot-api-secret-token") ?? "";
    if (!isSecret(given)) {
      log.warning("webhook request with a wrong or missing secret token refused");
      return refuse(input, 401, "wrong secret token");
    }
    if (input.method !== "POST") return refuse(input, 405, "use POST");
    if (!accepting()) return refuse(input, 503, "shutting down, retry later");
    const declared = Number(input.header("content-length") ?? "0");
    if (declared > limit) return refuse(input, 413, `body over ${limit} bytes`);
    const body = await input.body();
    if (body === "too_large" || (body !== "timeout" && body.byteLength > limit)) {
      return refuse(input, 413, `body over ${limit} bytes`);
    }
    if (body === "timeout") return refuse(input, 408, "body not received in time");
    const parsed = parseJson(body);
    if (parsed === undefined) return refuse(input, 400, "body is not JSON");
    const checked = checkUpdate(parsed);
    if (!checked.ok) {
      const id = (parsed as { update_id?: unknown } | null)?.update_id;
      if (!Number.isSafeInteger(id)) return refuse(input, 400, "body is not a Telegram update");
      // A real update id: answering an error would only make Telegram send it again.
      metrics.updatesDropped.inc({ reason: "malformed" });
      log.warning("dropped malformed update {update_id}: {problem}", {
        update_id: id,
        problem: checked.problem,
      });
      return { status: 200, body: DROPPED };
    }
    let reply: string | null = null;
    envelopes.set(checked.update, {
      send(payload) {
        reply = payload;
        return Promise.resolve();
      },
    });
    await scheduler.schedule(checked.update);
    // Only now: the update is handled and remembered, so Telegram may take it as done.
    return { status: 200, body: reply ?? OK };
  };
}

/** The webhook endpoint as a WHATWG handler (`Deno.serve`, tests); see the module documentation. */
export function webhookHandler(
  options: WebhookHandlerOptions,
): (req: Request) => Promise<Response> {
  const limit = options.maxBodyBytes ?? MAX_WEBHOOK_BODY_BYTES;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 30_000;
  const read = options.buffered
    ? (req: Request) => req.bytes()
    : (req: Request) => readLimited(req, limit, bodyTimeoutMs);
  const core = webhookCore(options);
  return async function webhook(req) {
    const output = await core({
      method: req.method,
      header: (name) => req.headers.get(name),
      body: () => read(req),
      discard: async () => {
        await req.body?.cancel();
      },
    });
    const headers: [string, string][] = [[...JSON_TYPE]];
    if (output.retryAfter !== undefined) headers.push(["retry-after", output.retryAfter]);
    return new Response(output.body, { status: output.status, headers });
  };
}

/**
 * The webhook endpoint as the program's HTTP server serves it: straight from its parser, without
 * WHATWG objects (`DirectRoute`), the body already read whole within the server's limits.
 */
export function webhookRoute(options: WebhookHandlerOptions, path: string): WebhookRoute {
  const core = webhookCore(options);
  const headers = [JSON_TYPE] as const;
  return {
    path,
    async handler(request) {
      const output = await core({
        method: request.method,
        header: (name) => request.header(name),
        body: () => Promise.resolve(request.body),
        discard: () => Promise.resolve(),
      });
      return {
        status: output.status,
        headers: output.retryAfter === undefined
          ? headers
          : [JSON_TYPE, ["retry-after", output.retryAfter]],
        body: output.body,
      };
    },
  };
}

/** Registers the webhook with Telegram: URL, secret, update types and connection limit. */
export async function registerWebhook(
  api: Api,
  webhook: WebhookConfig,
  allowedUpdates: readonly string[],
  signal?: AbortSignal,
): Promise<void> {
  await api.setWebhook(webhook.url, {
    secret_token: webhook.secret,
    allowed_updates: [...allowedUpdates] as never,
    max_connections: webhook.maxConnections,
    drop_pending_updates: false,
  }, signal as never);
}

/** Options of {@link WebhookTransport}. */
export interface WebhookTransportOptions {
  webhook: WebhookConfig;
  scheduler: UpdateScheduler;
  startup: Startup;
  /** Aborts at the stop. */
  signal: AbortSignal;
  log: Logger;
  metrics: Pick<Metrics, "webhookRejected" | "updatesDropped">;
  /** A plain API client (without retries) for the health probe. */
  probeApi: () => Api | null;
}

/** Receiving updates as webhook POSTs; see the module documentation. */
export class WebhookTransport implements Transport {
  readonly mode = "webhook" as const;
  readonly failed: Promise<Error> = new Promise(() => {});
  /**
   * The path and handler the HTTP server serves; `direct` is the same endpoint for the
   * program's own server, without WHATWG objects.
   */
  readonly route: {
    path: string;
    handler: (req: Request) => Promise<Response>;
    direct: WebhookRoute;
  };
  readonly checks;
  readonly #o: WebhookTransportOptions;
  #accepting = false;
  #stopping: Promise<DrainResult> | null = null;

  constructor(options: WebhookTransportOptions) {
    this.#o = options;
    const handlerOptions: WebhookHandlerOptions = {
      secret: options.webhook.secret,
      scheduler: options.scheduler,
      accepting: () => this.#accepting,
      log: options.log,
      metrics: options.metrics,
      // Served by src/http/, which reads each body whole (1 MiB at most, 30 s) before this.
      buffered: true,
    };
    this.route = {
      path: options.webhook.path,
      handler: webhookHandler(handlerOptions),
      direct: webhookRoute(handlerOptions, options.webhook.path),
    };
    const probe = webhookCheck(() => options.probeApi(), options.webhook.url);
    this.checks = { "webhook:telegram": probe };
  }

  async start(api: Api, allowedUpdates: readonly string[]): Promise<void> {
    const { webhook, startup, signal } = this.#o;
    // Accept before registering: Telegram may post the moment setWebhook returns.
    this.#accepting = true;
    await startup.until(
      "setWebhook",
      () => registerWebhook(api, webhook, allowedUpdates, signal),
    );
  }

  stop(drain: () => Promise<DrainResult>): Promise<DrainResult> {
    this.#stopping ??= (() => {
      this.#accepting = false;
      return drain();
    })();
    return this.#stopping;
  }
}
