/** Output streams of the CLI, injectable so commands can be tested in-process. */
export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** Writes to the process's stdout/stderr. */
export const processIO: CliIO = {
  out: (s) => process.stdout.write(s.endsWith("\n") ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith("\n") ? s : `${s}\n`),
};

/** A usage or input error: printed as one line, exit code 2. */
export class CliUsageError extends Error {
  override name = "CliUsageError";
}
