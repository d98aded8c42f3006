/**
 * A throw-away self-signed certificate for tests of TLS listeners and clients
 * (made by Debian's `openssl`): EC P-256, valid one day, for `localhost` and
 * `127.0.0.1`. The certificate is its own CA: give it to a client as `ca`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A PEM key and certificate. */
export interface TestCertificate {
  key: string;
  cert: string;
}

export function selfSignedCert(): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-cert-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      { stdio: "ignore" },
    );
    return {
      key: readFileSync(join(dir, "key.pem"), "utf8"),
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
