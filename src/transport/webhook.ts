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
import { secureEquals } from "../util/secure_compare.ts";
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

/** The webhook endpoint; see the module documentation. */
export function webhookHandler(
  options: WebhookHandlerOptions,
): (req: Request) => Promise<Response> {
  const { secret, scheduler, accepting, log, metrics } = options;
  const limit = options.maxBodyBytes ?? MAX_WEBHOOK_BODY_BYTES;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 30_000;
  const read = options.buffered
    ? async (req: Request) => {
      const body = await req.bytes();
      return body.byteLength > limit ? "too_large" as const : body;
    }
    : (req: Request) => readLimited(req, limit, bodyTimeoutMs);
  const refuse = async (req: Request, status: number, message: string) => {
    metrics.webhookRejected.inc({ status: String(status) });
    await req.body?.cancel().catch(() => {});
    return Response.json({ ok: false, error: message }, {
      status,
      headers: status === 503 ? { "retry-after": "5" } : {},
    });
  };
  return async function webhook(req) {
    const given = req.headers.get("x-telegram-bot-api-secret-token") ?? "";
    if (!secureEquals(given, secret)) {
      log.warning("webhook request with a wrong or missing secret token refused");
      return refuse(req, 401, "wrong secret token");
    }
    if (req.method !== "POST") return refuse(req, 405, "use POST");
    if (!accepting()) return refuse(req, 503, "shutting down, retry later");
    const declared = Number(req.headers.get("content-length") ?? "0");
    if (declared > limit) return refuse(req, 413, `body over ${limit} bytes`);
    const body = await read(req);
    if (body === "too_large") return refuse(req, 413, `body over ${limit} bytes`);
    if (body === "timeout") return refuse(req, 408, "body not received in time");
    const parsed = parseJson(body);
    if (parsed === undefined) return refuse(req, 400, "body is not JSON");
    const checked = checkUpdate(parsed);
    if (!checked.ok) {
      const id = (parsed as { update_id?: unknown } | null)?.update_id;
      if (!Number.isSafeInteger(id)) return refuse(req, 400, "body is not a Telegram update");
      // A real update id: answering an error would only make Telegram send it again.
      metrics.updatesDropped.inc({ reason: "malformed" });
      log.warning("dropped malformed update {update_id}: {problem}", {
        update_id: id,
        problem: checked.problem,
      });
      return Response.json({ ok: true, dropped: true });
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
    if (reply === null) return Response.json({ ok: true });
    return new Response(reply as string, { headers: { "content-type": "application/json" } });
  };
}

/**
 * Reads the body into one buffer that grows with what actually arrived (never the declared
 * size up front, and no chunk views pinning larger buffers), within `limit` and `timeoutMs`.
 */
async function readLimited(
  req: Request,
  limit: number,
  timeoutMs: number,
): Promise<Uint8Array | "too_large" | "timeout"> {
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  let buffer = new Uint8Array(Math.min(limit, 16 * 1024));
  let size = 0;
  let timedOut = false;
  // Cancelling ends the pending read. (Racing each read against one long-lived timeout promise
  // would keep every chunk alive through the reactions it collects.)
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  try {
    for (;;) {
      const next = await reader.read();
      if (timedOut) return "timeout";
      if (next.done) return buffer.subarray(0, size);
      const chunk = next.value;
      if (size + chunk.byteLength > limit) return "too_large";
      if (size + chunk.byteLength > buffer.byteLength) {
        const grown = new Uint8Array(
          Math.min(limit, Math.max(buffer.byteLength * 2, size + chunk.byteLength)),
        );
        grown.set(buffer.subarray(0, size));
        buffer = grown;
      }
      buffer.set(chunk, size);
      size += chunk.byteLength;
    }
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The parsed JSON body, or undefined when it is not UTF-8 JSON. */
function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(body));
  } catch {
    return undefined;
  }
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
  /** The path and handler the HTTP server serves. */
  readonly route: { path: string; handler: (req: Request) => Promise<Response> };
  readonly checks;
  readonly #o: WebhookTransportOptions;
  #accepting = false;
  #stopping: Promise<DrainResult> | null = null;

  constructor(options: WebhookTransportOptions) {
    this.#o = options;
    this.route = {
      path: options.webhook.path,
      handler: webhookHandler({
        secret: options.webhook.secret,
        scheduler: options.scheduler,
        accepting: () => this.#accepting,
        log: options.log,
        metrics: options.metrics,
        // Served by src/http/, which reads each body whole (1 MiB at most, 30 s) before this.
        buffered: true,
      }),
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
