/**
 * `portcullis serve --admin-tls-key/--admin-tls-cert`: the admin API over
 * HTTPS (a created AccessKey's secret travels in its response). The CLI trusts
 * a private CA through Node's NODE_EXTRA_CA_CERTS and refuses the certificate
 * without it; requests over it see `acs:SecureTransport` true.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { selfSignedCert } from "@portcullis/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCliAsync } from "./helpers/cli.ts";
import { type Serve, startServe } from "./helpers/serve.ts";

const dir = mkdtempSync(join(tmpdir(), "portcullis-admin-tls-"));
const cert = selfSignedCert();
const keyFile = join(dir, "key.pem");
const certFile = join(dir, "cert.pem");
writeFileSync(keyFile, cert.key, { mode: 0o600 });
writeFileSync(certFile, cert.cert);
let gw: Serve;

beforeAll(async () => {
  gw = await startServe({
    args: ["--no-mqtt", "--no-amqp", "--admin-tls-key", keyFile, "--admin-tls-cert", certFile],
  });
});
afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCliAsync(["admin", ...args], { env: { ...gw.cliEnv, NODE_EXTRA_CA_CERTS: certFile, ...env } });

describe("portcullis serve: admin API over HTTPS", () => {
  it("serves https:// and the CLI works through it with the CA trusted", async () => {
    expect(gw.adminUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await cli(["user", "create", "tls-alice", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ userName: "tls-alice", changed: true });
  });

  it("a key without a certificate (or an unreadable file) is a usage error, before anything starts", async () => {
    const data = join(dir, "unused-data");
    const half = await runCliAsync(["serve", "--data-dir", data, "--admin-tls-key", keyFile]);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain("--admin-tls-key and --admin-tls-cert go together");
    const missing = await runCliAsync([
      "serve",
      "--data-dir",
      data,
      "--admin-tls-key",
      keyFile,
      "--admin-tls-cert",
      join(dir, "nope.pem"),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`--admin-tls-cert ${join(dir, "nope.pem")}: ENOENT`);
    expect(existsSync(data)).toBe(false);
  });

  it("refuses an untrusted certificate with a clear error", async () => {
    const r = await cli(["user", "list"], { NODE_EXTRA_CA_CERTS: "" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/certificate|self.signed/i);
  });

  it("requests over it are SecureTransport: a grant conditioned on it applies", async () => {
    const doc = {
      Version: "1",
      Statement: [
        {
          Effect: "Allow",
          Action: "ram:ListUsers",
          Resource: "*",
          Condition: { Bool: { "acs:SecureTransport": "true" } },
        },
      ],
    };
    const docFile = join(dir, "over-tls-only.json");
    writeFileSync(docFile, JSON.stringify(doc));
    for (const args of [
      ["user", "create", "tls-ops"],
      ["policy", "create", "over-tls-only", "--document", docFile],
      ["policy", "attach", "over-tls-only", "--user", "tls-ops"],
    ]) {
      const r = await cli(args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
    }
    const key = await cli(["accesskey", "create", "--user", "tls-ops", "--json"]);
    expect(key.code, key.stderr).toBe(0);
    const { accessKeyId, accessKeySecret } = JSON.parse(key.stdout) as Record<string, string>;
    const asOps = { PORTCULLIS_ACCESS_KEY_ID: accessKeyId, PORTCULLIS_ACCESS_KEY_SECRET: accessKeySecret };
    const list = await cli(["user", "list", "--json"], asOps);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(list.stdout))).toContain("tls-ops");
  });
});
