/** The program's name as operators see it in logs, `version` and metrics. */
export const PROGRAM_NAME = "service-desk-bot";

/** The release version; bump together with deno.json's `version`. */
export const VERSION = "0.1.0";
