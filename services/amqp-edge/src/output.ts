/**
 * Writes frames to one socket. Forwarded frames are slices of the chunk they
 * arrived in: consecutive frames of one chunk are merged into one slice, so a
 * chunk that is forwarded whole is written as it came (no copy). Everything
 * queued while handling one input event is written in one batch (corked, so
 * several slices become one writev) at the end of the current microtask.
 */
import type { Socket } from "node:net";

/** A batched, copy-free frame writer for one socket. */
export class Output {
  readonly #socket: Socket;
  readonly #onBlocked: () => void;
  #parts: Buffer[] = [];
  #runBuf: Buffer | undefined;
  #runStart = 0;
  #runEnd = 0;
  #scheduled = false;
  /** Set when anything was written since the heartbeat timer last cleared it. */
  wrote = false;
  /** Octets handed to the socket so far. */
  written = 0;

  /** `onBlocked` is called when the socket's buffer is full (pause the producer until `drain`). */
  constructor(socket: Socket, onBlocked: () => void) {
    this.#socket = socket;
    this.#onBlocked = onBlocked;
  }

  /** Queue `buf[start, end)` (a forwarded frame or run of frames). */
  forward(buf: Buffer, start: number, end: number): void {
    if (this.#runBuf === buf && this.#runEnd === start) {
      this.#runEnd = end;
    } else {
      this.#closeRun();
      this.#runBuf = buf;
      this.#runStart = start;
      this.#runEnd = end;
    }
    this.#schedule();
  }

  /** Queue a buffer (a frame the edge built, or a piece of a split frame). */
  write(b: Buffer): void {
    this.#closeRun();
    this.#parts.push(b);
    this.#schedule();
  }

  #closeRun(): void {
    if (this.#runBuf) {
      this.#parts.push(this.#runBuf.subarray(this.#runStart, this.#runEnd));
      this.#runBuf = undefined;
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** Write everything queued now. */
  flush(): void {
    this.#scheduled = false;
    this.#closeRun();
    const parts = this.#parts;
    if (parts.length === 0) return;
    this.#parts = [];
    const s = this.#socket;
    if (s.destroyed || !s.writable) return;
    this.wrote = true;
    let ok = true;
    if (parts.length === 1) {
      this.written += parts[0]!.length;
      ok = s.write(parts[0]!);
    } else {
      s.cork();
      for (const p of parts) {
        this.written += p.length;
        ok = s.write(p);
      }
      s.uncork();
    }
    if (!ok) this.#onBlocked();
  }
}
