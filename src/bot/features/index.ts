/**
 * The service desk's features, in the order they run, and what they need. `app.ts` builds
 * them once storage is open; each feature is a composer in its own file.
 */
import type { Composer } from "grammy";
import type { Config } from "../../config.ts";
import type { Health } from "../../health.ts";
import type { Metrics } from "../../metrics.ts";
import type { Storage } from "../../storage.ts";
import type { BotContext } from "../context.ts";
import type { Dialog } from "../dialog/dialog.ts";
import { accountFeature } from "./account.ts";
import { adminFeature } from "./admin.ts";
import { requestDialog, requestsFeature } from "./requests.ts";
import { createStaffBoard, staffFeature } from "./staff.ts";

/** What the features use: settings, storage, and the operator-facing health and metrics. */
export interface FeatureDeps {
  config: Config;
  storage: Storage;
  health: Health;
  metrics: Metrics;
}

/** Every feature of the service desk, in order; the fallback comes after them. */
export function serviceDeskFeatures(deps: FeatureDeps): Composer<BotContext>[] {
  const staffBoard = createStaffBoard(deps);
  return [
    accountFeature(deps),
    adminFeature(deps),
    staffFeature({ ...deps, staffBoard }),
    requestsFeature({ ...deps, staffBoard }),
  ];
}

/** Every dialog those features define. */
export const SERVICE_DESK_DIALOGS: readonly Dialog<string, unknown>[] = [
  requestDialog as Dialog<string, unknown>,
];
