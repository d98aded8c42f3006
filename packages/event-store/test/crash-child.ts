/**
 * Child process of sqlite-crash.int.test.ts: appends batches of 1–5 events to
 * the SQLite file given as argv[2], as fast as it can, until it is killed.
 * Usage: node --import tsx crash-child.ts <db path> <run label>
 *
 * Each event's `reason` is `crash <run> batch <n> event <i>/<size>`, so the
 * parent can check after the crash that every batch it finds is whole.
 * Prints `ready` once the first batch is committed.
 */
import { accountStream, newEvent } from "@portcullis/events";
import { SqliteEventStore } from "../src/adapters/sqlite.ts";

const [path, run] = process.argv.slice(2);
if (!path || !run) {
  process.stderr.write("usage: crash-child.ts <db path> <run label>\n");
  process.exit(2);
}

const accounts = ["2000000000000001", "2000000000000002", "2000000000000003"];
const store = SqliteEventStore.open(path);
for (let batch = 0; ; batch++) {
  const account = accounts[batch % accounts.length]!;
  const size = 1 + ((batch * 7) % 5);
  const events = Array.from({ length: size }, (_, i) =>
    newEvent(
      "UserCreated",
      1,
      account,
      { kind: "system", name: "crash-child" },
      { userId: `u-${run}-${batch}-${i}`, userName: `user-${batch}-${i}` },
      { reason: `crash ${run} batch ${batch} event ${i}/${size}` },
    ),
  );
  await store.append(accountStream(account), events);
  if (batch === 0) process.stdout.write("ready\n");
  // Let the event loop breathe now and then (stdout, signals); appends stay back to back.
  if (batch % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
}
