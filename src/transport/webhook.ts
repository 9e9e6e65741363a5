import type { Api } from "grammy";
import type { Update } from "grammy/types";
import type { WebhookConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { secureEquals } from "../util/secure_compare.ts";
import type { UpdateScheduler } from "./scheduler.ts";

/** Largest webhook body accepted; real updates are a few kilobytes. */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;

/** Options of {@link webhookHandler}. */
export interface WebhookHandlerOptions {
  /** The expected `X-Telegram-Bot-Api-Secret-Token`. */
  secret: string;
  /** Runs accepted updates. */
  scheduler: UpdateScheduler;
  /** False once a stop began: Telegram is told to come back later. */
  accepting: () => boolean;
  /** Where refusals are logged. */
  log: Logger;
  /** Refusal counter. */
  metrics: Pick<Metrics, "webhookRejected">;
  /** Body size limit in bytes. @default MAX_WEBHOOK_BODY_BYTES */
  maxBodyBytes?: number;
}

/**
 * The webhook endpoint: checks the secret, the size and the JSON, then answers 200 only once
 * the update has been handled, so that Telegram re-sends anything a crash interrupted.
 */
export function webhookHandler(
  options: WebhookHandlerOptions,
): (req: Request) => Promise<Response> {
  const { secret, scheduler, accepting, log, metrics } = options;
  const limit = options.maxBodyBytes ?? MAX_WEBHOOK_BODY_BYTES;
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
    if (!(await secureEquals(given, secret))) {
      log.warning("webhook request with a wrong or missing secret token refused");
      return refuse(req, 401, "wrong secret token");
    }
    if (req.method !== "POST") return refuse(req, 405, "use POST");
    if (!accepting()) return refuse(req, 503, "shutting down, retry later");
    const declared = Number(req.headers.get("content-length") ?? "0");
    if (declared > limit) return refuse(req, 413, `body over ${limit} bytes`);
    const body = await readLimited(req, limit);
    if (body === null) return refuse(req, 413, `body over ${limit} bytes`);
    const update = parseUpdate(body);
    if (update === null) return refuse(req, 400, "body is not a Telegram update");
    await scheduler.schedule(update);
    return Response.json({ ok: true });
  };
}

async function readLimited(req: Request, limit: number): Promise<Uint8Array | null> {
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body) {
    size += chunk.byteLength;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

function parseUpdate(body: Uint8Array): Update | null {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const id = (value as { update_id?: unknown }).update_id;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) return null;
  return value as Update;
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
