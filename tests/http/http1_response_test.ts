import assert from "node:assert/strict";
import { serializeResponse } from "../../src/http/http1_response.ts";

const decoder = new TextDecoder();
const KEEP_ALIVE = "keep-alive: timeout=5\r\n";
const JSON_TYPE = [["content-type", "application/json"]] as const;

Deno.test("serializeResponse() gives a repeated answer the same bytes, and any change its own", () => {
  const body = new TextEncoder().encode('{"ok":true}');
  const first = serializeResponse(200, "", JSON_TYPE, body, true, KEEP_ALIVE);
  const text = decoder.decode(first);
  assert.match(
    text,
    /^HTTP\/1\.1 200 OK\r\ndate: [^\r]+ GMT\r\ncontent-length: 11\r\nkeep-alive: timeout=5\r\ncontent-type: application\/json\r\n\r\n\{"ok":true\}$/,
  );
  const again = serializeResponse(200, "", JSON_TYPE, body, true, KEEP_ALIVE);
  // The same second: the same buffer (nothing writes to it). Across a second's edge the date
  // differs, so compare by content then.
  if (again !== first) {
    assert.equal(
      decoder.decode(again).replace(/date: [^\r]+/, ""),
      text.replace(/date: [^\r]+/, ""),
    );
  }

  const closing = decoder.decode(serializeResponse(200, "", JSON_TYPE, body, false, KEEP_ALIVE));
  assert.match(closing, /\r\nconnection: close\r\n/);
  assert.doesNotMatch(closing, /keep-alive/);
  const other = decoder.decode(
    serializeResponse(
      200,
      "",
      JSON_TYPE,
      new TextEncoder().encode('{"ok":false}'),
      true,
      KEEP_ALIVE,
    ),
  );
  assert.match(other, /content-length: 12\r\n[\s\S]*\{"ok":false\}$/);
  const head = decoder.decode(
    serializeResponse(200, "", JSON_TYPE, body, true, KEEP_ALIVE, { sendBody: false }),
  );
  assert.match(head, /content-length: 11\r\n[\s\S]*\r\n\r\n$/, "HEAD: the length, no body");
  const http10 = decoder.decode(
    serializeResponse(200, "", JSON_TYPE, body, true, KEEP_ALIVE, { http10: true }),
  );
  assert.match(http10, /\r\nconnection: keep-alive\r\n/);
  const status = decoder.decode(serializeResponse(503, "", JSON_TYPE, body, true, KEEP_ALIVE));
  assert.match(status, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  const fields = decoder.decode(
    serializeResponse(200, "", [["content-type", "text/html"]], body, true, KEEP_ALIVE),
  );
  assert.match(fields, /\r\ncontent-type: text\/html\r\n/);
  // And back: the first answer's bytes are still right.
  assert.equal(
    decoder.decode(serializeResponse(200, "", JSON_TYPE, body, true, KEEP_ALIVE)).replace(
      /date: [^\r]+/,
      "",
    ),
    text.replace(/date: [^\r]+/, ""),
  );
});
