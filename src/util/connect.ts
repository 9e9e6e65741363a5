/**
 * Opening a client connection, TCP or TLS, that a promise can give up on: what the Redis client
 * and the Bot API client share.
 *
 * @module
 */
import { closeQuietly } from "./close_quietly.ts";

/** Where to connect. */
export interface Endpoint {
  hostname: string;
  port: number;
  tls: boolean;
}

/**
 * Connects to `endpoint` unless `stop` rejects first (a deadline, an abort), with its error. TLS
 * verifies the certificate here, not at the first read, so that a refused one is the error and
 * not a timeout later; a TCP connection sends small writes at once (no Nagle delay). A
 * connection that arrives after `stop` is closed at once.
 */
export async function connectUntil(endpoint: Endpoint, stop: Promise<never>): Promise<Deno.Conn> {
  const { hostname, port, tls } = endpoint;
  const connecting = tls
    ? Deno.connectTls({ hostname, port })
    : Deno.connect({ hostname, port, transport: "tcp" });
  try {
    const conn = await Promise.race([connecting, stop]);
    if (tls) await Promise.race([(conn as Deno.TlsConn).handshake(), stop]);
    else (conn as Deno.TcpConn).setNoDelay(true);
    return conn;
  } catch (error) {
    connecting.then((late) => closeQuietly(late), () => {});
    throw error;
  }
}
