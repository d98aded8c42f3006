/**
 * Child process of jetstream-crash.int.test.ts: appends to a JetStream event
 * store in a loop until it is killed (kill -9). Before each append it prints
 * `intent <json>` (the stream and event ids), after each acknowledged append
 * `ack <json>` (the ids and the AppendResult); the parent checks the store
 * against these lines. Stdout writes to a pipe are synchronous on Linux, so a
 * printed line is never lost to the kill.
 *
 * Usage: tsx jetstream-crash-child.ts <nats-url> <stream-name> <subject-prefix> <writer-id>
 */
import { accountStream, newEvent } from "@portcullis/events";
import { JetStreamEventStore } from "../src/adapters/jetstream.ts";
import { isExpectedRevisionConflict } from "../src/errors.ts";

const [url, streamName, subjectPrefix, writer] = process.argv.slice(2);
if (!url || !streamName || !subjectPrefix || !writer) {
  process.stderr.write(
    "usage: jetstream-crash-child.ts <nats-url> <stream-name> <subject-prefix> <writer-id>\n",
  );
  process.exit(2);
}

const store = await JetStreamEventStore.connect({ servers: url, streamName, subjectPrefix });
const accounts = ["0000000000000001", "0000000000000002", "0000000000000003"];
process.stdout.write("ready\n");

for (let i = 0; ; i++) {
  const accountId = accounts[i % accounts.length]!;
  const stream = accountStream(accountId);
  const count = 1 + (i % 4);
  const events = Array.from({ length: count }, (_, k) =>
    newEvent(
      "UserCreated",
      1,
      accountId,
      { kind: "root", accountId },
      { userId: `w${writer}-${i}-${k}`, userName: `n${i}` },
    ),
  );
  const ids = events.map((e) => e.id);
  process.stdout.write(`intent ${JSON.stringify({ stream, ids })}\n`);
  try {
    // Every other append uses optimistic concurrency, racing the other writer.
    const expectedRevision = i % 2 === 0 ? await store.streamRevision(stream) : undefined;
    const result = await store.append(stream, events, { expectedRevision });
    process.stdout.write(`ack ${JSON.stringify({ stream, ids, ...result })}\n`);
  } catch (err) {
    if (!isExpectedRevisionConflict(err)) throw err;
    process.stdout.write(`conflict ${JSON.stringify({ stream, ids })}\n`);
  }
}
