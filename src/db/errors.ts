/**
 * The database's failures told in one short line, and whether waiting can fix them. postgres.js
 * reports server refusals with a SQLSTATE `code` and network failures with Node's `code`
 * (`ECONNREFUSED`, …); both are turned into a {@link DatabaseError} here, at the boundary.
 */
import { causeChain, DatabaseError } from "../errors.ts";

/** SQLSTATE codes that no amount of waiting fixes, with what to tell the operator. */
const PERMANENT: Record<string, (message: string) => string> = {
  "28P01": (m) => `${m}: check the user and password in DATABASE_URL`,
  "28000": (m) => `${m}: check DATABASE_URL and the server's pg_hba.conf`,
  "3D000": (m) => `${m}: create it, or fix the database name in DATABASE_URL`,
  "42501": (m) => `${m}: the user in DATABASE_URL lacks a privilege the bot needs`,
};

/** Network failures, with a short description. */
const NETWORK: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connection timed out",
  CONNECT_TIMEOUT: "connection timed out",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  CONNECTION_CLOSED: "connection closed",
  CONNECTION_ENDED: "connection ended",
  CONNECTION_DESTROYED: "connection destroyed",
};

/**
 * `error` as a {@link DatabaseError} saying in one line what happened at `where` (e.g.
 * `postgres db.example:5432/desk`): refused credentials and a missing database are
 * `permanent`; network failures and a server starting up are not.
 */
export function databaseError(error: unknown, where: string): DatabaseError {
  if (error instanceof DatabaseError) return error;
  const code = typeof error === "object" && error !== null
    ? String((error as { code?: unknown }).code ?? "")
    : "";
  const message = error instanceof Error ? error.message : String(error);
  const permanent = PERMANENT[code];
  if (permanent) {
    return new DatabaseError(`the database ${where} refused: ${permanent(message)}`, {
      cause: error,
      permanent: true,
    });
  }
  const network = NETWORK[code];
  if (network) {
    return new DatabaseError(`the database ${where} is unreachable: ${network}`, { cause: error });
  }
  return new DatabaseError(`the database ${where} does not answer: ${causeChain(error)}`, {
    cause: error,
  });
}
