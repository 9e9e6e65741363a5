import assert from "node:assert/strict";
import { Api, Composer } from "grammy";
import type { BotContext } from "../../src/bot/context.ts";
import { defineDialog, type Dialog } from "../../src/bot/dialog/dialog.ts";
import {
  allowedUpdates,
  dialogsOf,
  type Feature,
  menuOf,
  publishMenus,
} from "../../src/bot/feature.ts";
import { z } from "zod";
import { type Call, recordingFetch } from "../support/bots.ts";

const ping: Feature = {
  name: "ping",
  composer: new Composer<BotContext>(),
  commands: {
    user: [{ command: "ping", description: "Check that I am here", rank: 3 }],
    staff: [{ command: "queue_ping", description: "Ping the queue" }],
  },
  dialogs: [
    defineDialog({ name: "ping", steps: ["a"], schema: z.object({}) }) as Dialog<string, unknown>,
  ],
  updates: ["my_chat_member"],
};
const base: Feature = {
  name: "base",
  composer: new Composer<BotContext>(),
  commands: {
    user: [{ command: "start", rank: 1 }, { command: "help", rank: 6 }],
    admin: ["stats"],
  },
};

Deno.test("menuOf() builds each role's menu from the features, in rank then feature order", () => {
  const names = (role: "user" | "staff" | "admin") =>
    menuOf([base, ping], role).map((e) => typeof e === "string" ? e : e.command);
  assert.deepEqual(names("user"), ["start", "ping", "help"]);
  assert.deepEqual(names("staff"), ["start", "ping", "help", "queue_ping"]);
  assert.deepEqual(
    names("admin"),
    ["start", "stats", "ping", "help", "queue_ping"].sort((a, b) =>
      names("admin").indexOf(a) - names("admin").indexOf(b)
    ),
  );
  assert.ok(names("admin").includes("stats") && !names("user").includes("stats"));
});

Deno.test("allowedUpdates() and dialogsOf() come from the features", () => {
  assert.deepEqual(allowedUpdates([base]), ["callback_query", "message"]);
  assert.deepEqual(allowedUpdates([base, ping]), ["callback_query", "message", "my_chat_member"]);
  assert.deepEqual(dialogsOf([base, ping]).map((d) => d.name), ["ping"]);
});

Deno.test("publishMenus() puts a new feature's command in every language's menu, the staff chat's and each admin's", async () => {
  const calls: Call[] = [];
  const api = new Api("123:abc", {
    apiRoot: "http://bot-api.invalid",
    fetch: recordingFetch(calls) as never,
  });
  await publishMenus(api, [base, ping], { defaultLocale: "en", adminIds: [42], staffChatId: -100 });
  const menus = calls.filter((c) => c.method === "setMyCommands").map((c) => c.body);
  const commands = (m: Record<string, unknown>) =>
    (m.commands as { command: string }[]).map((c) => c.command);
  const users = menus.filter((m) => m.scope === undefined);
  assert.equal(users.length, 4, "the default menu and one per language");
  for (const menu of users) assert.deepEqual(commands(menu), ["start", "ping", "help"]);
  const staff = menus.find((m) => (m.scope as { chat_id?: number })?.chat_id === -100)!;
  assert.deepEqual(commands(staff), ["queue_ping"]);
  const admin = menus.find((m) => (m.scope as { chat_id?: number })?.chat_id === 42)!;
  assert.ok(commands(admin).includes("ping") && commands(admin).includes("stats"));
});
