import assert from "node:assert/strict";
import { diskSpace, DiskWatch } from "../../src/jobs/disk.ts";
import { Metrics } from "../../src/metrics/metrics.ts";

const MIB = 1024 * 1024;

Deno.test("diskSpace() reads the free space of the file system that holds a directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "disk-test-" });
  try {
    const space = await diskSpace(dir);
    assert.ok("freeBytes" in space && space.freeBytes > 0, JSON.stringify(space));
    assert.deepEqual(await diskSpace(`${dir}/missing`), {
      unknown: `free space unknown: ${dir}/missing does not exist (nothing is stored there)`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DiskWatch warns below DISK_MIN_FREE_MB, says when it cannot measure, and never warns at 0", async (t) => {
  using metrics = new Metrics();
  const watch = (freeMb: number | null, minFreeMb = 500) =>
    new DiskWatch({
      dir: "data",
      minFreeMb,
      metrics: metrics.background,
      measure: () =>
        Promise.resolve(
          freeMb === null ? { unknown: "free space unknown: needs --allow-sys=statfs" } : {
            freeBytes: freeMb * MIB,
          },
        ),
    });
  await t.step("plenty", async () => {
    assert.deepEqual(await watch(2048).check(), {
      status: "pass",
      observedValue: 2048,
      observedUnit: "MiB",
      output: "2048 MiB free",
    });
    assert.equal(await watch(2048).problem(), null);
    assert.equal((await metrics.background.diskFree.get()).values[0]?.value, 2048 * MIB);
  });
  await t.step("below the minimum", async () => {
    const low = watch(120);
    assert.equal((await low.check()).status, "warn");
    assert.equal(
      await low.problem(),
      "120 MiB free under data, below DISK_MIN_FREE_MB=500",
    );
  });
  await t.step("0 never warns", async () => {
    assert.equal((await watch(1, 0).check()).status, "pass");
  });
  await t.step("not measurable: the check says why, and nobody is alerted", async () => {
    assert.deepEqual(await watch(null).check(), {
      status: "pass",
      observedValue: 0,
      observedUnit: "MiB",
      output: "free space unknown: needs --allow-sys=statfs",
    });
    assert.equal(await watch(null).problem(), null);
  });
});
