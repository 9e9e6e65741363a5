import assert from "node:assert/strict";
import { causeChain } from "../src/errors.ts";

Deno.test("causeChain: each message once, outermost first, a quoted cause not said again", () => {
  const refused = new Error("WRONGPASS invalid username-password pair.");
  const outer = new Error(
    "Redis refused the credentials (WRONGPASS invalid username-password pair): check REDIS_URL",
    { cause: refused },
  );
  assert.equal(
    causeChain(outer),
    "Redis refused the credentials (WRONGPASS invalid username-password pair): check REDIS_URL",
  );
  const chain = new Error("opening storage failed", {
    cause: new Error("connect failed", { cause: new Error("connection refused") }),
  });
  assert.equal(causeChain(chain), "opening storage failed: connect failed: connection refused");
  // grammY's HttpError keeps its cause in `error`.
  const http = Object.assign(new Error("Network request for 'getMe' failed!"), {
    error: new Error("cannot connect"),
  });
  assert.equal(causeChain(http), "Network request for 'getMe' failed!: cannot connect");
  assert.equal(causeChain("plain"), "plain");
});
