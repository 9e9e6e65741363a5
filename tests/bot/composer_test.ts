/**
 * `BotComposer` filters as grammY's `Composer` does: the same handlers run in the same order
 * for the same updates, whatever the predicates return, with middleware added afterwards, and
 * errors reach the caller the same way.
 */
import assert from "node:assert/strict";
import { Composer, Context, type Middleware } from "grammy";
import type { Update, UserFromGetMe } from "grammy/types";
import { BotComposer } from "../../src/bot/composer.ts";

const ME = {
  id: 1,
  is_bot: true,
  first_name: "Bot",
  username: "desk_bot",
} as UserFromGetMe;

function context(update: Partial<Update>): Context {
  return new Context({ update_id: 1, ...update } as Update, {} as never, ME);
}

const message = (text: string, chat: "private" | "group" = "private"): Partial<Update> => ({
  message: {
    message_id: 1,
    date: 0,
    chat: chat === "private"
      ? { id: 5, type: "private", first_name: "U" }
      : { id: -5, type: "group", title: "G" },
    from: { id: 5, is_bot: false, first_name: "U" },
    text,
    ...(text.startsWith("/")
      ? { entities: [{ type: "bot_command", offset: 0, length: text.split(" ")[0]!.length }] }
      : {}),
  },
});
const callback = (data: string): Partial<Update> => ({
  callback_query: {
    id: "q",
    chat_instance: "c",
    from: { id: 5, is_bot: false, first_name: "U" },
    data,
  },
});

/** The same handlers on a composer of `Kind`; returns what ran for `update`, in order. */
async function trace(Kind: typeof Composer, update: Partial<Update>): Promise<string[]> {
  const seen: string[] = [];
  const log = (name: string, pass = false): Middleware<Context> => (_ctx, next) => {
    seen.push(name);
    return pass ? next() : undefined;
  };
  const root = new Kind<Context>();
  root.use(log("first", true));
  root.command("start", log("start"));
  const privateChats = root.chatType("private");
  privateChats.command("help", log("help private", true));
  // Added to the returned composer after the filter was made.
  privateChats.on("message:text", log("private text", true));
  root.callbackQuery(/^take:(\d+)$/, log("take"));
  // Async predicates, true and false, and predicates returning other values than booleans.
  root.filter(
    async (ctx) => (await Promise.resolve(ctx.msg?.text)) === "/help",
    log("async help", true),
  );
  root.filter(() => Promise.resolve(false), log("never"));
  root.filter((ctx) => (ctx.msg?.text?.length ?? 0) as unknown as boolean, log("truthy", true));
  root.filter(() => undefined as unknown as boolean, log("undefined"));
  root.drop((ctx) => ctx.chat?.type === "group", log("not group", true));
  root.hears(/^hi/, log("hi"));
  root.use(log("last"));
  await root.middleware()(context(update), () => {
    seen.push("next");
    return Promise.resolve();
  });
  return seen;
}

Deno.test("BotComposer runs the same handlers in the same order as grammY's Composer", async (t) => {
  const updates: Record<string, Partial<Update>> = {
    "/start": message("/start"),
    "/help in private": message("/help"),
    "/help in a group": message("/help", "group"),
    "hi there": message("hi there"),
    "text in a group": message("whatever", "group"),
    "take button": callback("take:42"),
    "other button": callback("other"),
  };
  for (const [name, update] of Object.entries(updates)) {
    await t.step(name, async () => {
      const ours = await trace(BotComposer as unknown as typeof Composer, update);
      assert.deepEqual(ours, await trace(Composer, update));
      assert.ok(ours.length > 1, `nothing ran: ${ours}`);
    });
  }
});

Deno.test("BotComposer: a failing predicate or handler rejects like grammY's", async () => {
  for (const Kind of [Composer, BotComposer as unknown as typeof Composer]) {
    const syncThrow = new Kind<Context>();
    syncThrow.filter(() => {
      throw new Error("predicate broke");
    }, () => {});
    await assert.rejects(
      Promise.resolve(syncThrow.middleware()(context(message("x")), () => Promise.resolve())),
      /predicate broke/,
    );
    const asyncThrow = new Kind<Context>();
    asyncThrow.on("message", () => Promise.reject(new Error("handler broke")));
    await assert.rejects(
      Promise.resolve(asyncThrow.middleware()(context(message("x")), () => Promise.resolve())),
      /handler broke/,
    );
  }
});

Deno.test("BotComposer: chained filters are BotComposers too", () => {
  const root = new BotComposer<Context>();
  assert.ok(root.chatType("private") instanceof BotComposer);
  assert.ok(root.chatType("private").command("x") instanceof BotComposer);
});

Deno.test("BotComposer: next called twice, plain composers inside, and waiting, as grammY", async () => {
  for (const Kind of [Composer, BotComposer as unknown as typeof Composer]) {
    const twice = new Kind<Context>();
    twice.use(async (_ctx, next) => {
      await next();
      await next();
    });
    twice.use(() => {});
    await assert.rejects(
      Promise.resolve(twice.middleware()(context(message("x")), () => Promise.resolve())),
      /`next` already called before!/,
      Kind.name,
    );

    const seen: string[] = [];
    const root = new Kind<Context>();
    const plain = new Composer<Context>();
    plain.use((_ctx, next) => {
      seen.push("plain");
      return next();
    });
    // A composer given as middleware, and one added to after it was given.
    root.use(plain, { middleware: () => (_ctx, next) => (seen.push("object"), next()) });
    plain.use(async (_ctx, next) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      seen.push("late, slow");
      await next();
    });
    root.on("message", async (_ctx, next) => {
      await next();
      seen.push("after next");
    });
    root.use(() => {
      seen.push("sync end");
    });
    await root.middleware()(context(message("x")), () => {
      seen.push("next");
      return Promise.resolve();
    });
    seen.push("resolved");
    assert.deepEqual(
      seen,
      ["plain", "late, slow", "object", "sync end", "after next", "resolved"],
      Kind.name,
    );
  }
});
