// Which tab leads: the one holding an exclusive Web Lock named after the stream. The browser
// grants it to one tab at a time, queues the others in order, and frees it when the holder
// releases it or its tab closes (or crashes), so the next tab in the queue takes over.
import type { LockManagerLike } from "./environment.js";

export class LeaderLock {
  readonly #locks: LockManagerLike;
  readonly #name: string;
  readonly #abort = new AbortController();
  #release: (() => void) | null = null;
  #released = false;

  constructor(locks: LockManagerLike, name: string) {
    this.#locks = locks;
    this.#name = name;
  }

  /** Queues for the lock; `lead` runs once it is granted, and it is held until `release`. */
  acquire(lead: () => void, failed: (error: unknown) => void): void {
    this.#locks
      .request(this.#name, { signal: this.#abort.signal }, () => {
        if (this.#released) return Promise.resolve();
        lead();
        return new Promise<void>((resolve) => (this.#release = resolve));
      })
      .catch((error: unknown) => {
        // Leaving the queue before the lock was granted is not a failure.
        if (!this.#released) failed(error);
      });
  }

  /** Gives the lock up (the next tab in line takes over), or leaves the queue. */
  release(): void {
    this.#released = true;
    if (this.#release) this.#release();
    else this.#abort.abort();
  }
}
