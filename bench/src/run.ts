/**
 * `pnpm bench`: runs every registered benchmark, one after the other, in one
 * process. To add one (event store, MQTT, AMQP, …), export a `Benchmark` from
 * its module and append it to BENCHMARKS. `pnpm bench -- NAME …` runs only the named ones.
 */
import { amqpBenchmark } from "./amqp.ts";
import { auditBenchmark } from "./audit.ts";
import type { Benchmark } from "./harness.ts";
import { mqttBenchmark } from "./mqtt.ts";
import { policyBenchmark } from "./policy.ts";
import { storeBenchmark } from "./store.ts";

/** Every benchmark, in the order `pnpm bench` runs them. */
export const BENCHMARKS: readonly Benchmark[] = [
  policyBenchmark,
  storeBenchmark,
  mqttBenchmark,
  amqpBenchmark,
  auditBenchmark,
];

const wanted = process.argv.slice(2).filter((a) => a !== "--");
const selected = wanted.length > 0 ? BENCHMARKS.filter((b) => wanted.includes(b.name)) : BENCHMARKS;
if (selected.length === 0) {
  console.error(
    `no benchmark named ${wanted.join(", ")}; known: ${BENCHMARKS.map((b) => b.name).join(", ")}`,
  );
  process.exitCode = 2;
}
const started = Date.now();
for (const b of selected) {
  console.log(`\n=== ${b.name}: ${b.description}`);
  await b.run();
}
console.log(`\nbench finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
