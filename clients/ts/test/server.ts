// A real HTTP server on loopback answering as the service would, so requests go through the
// real fetch: methods, paths, headers and bodies are what the service receives.
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: string;
}

export interface Answer {
  status: number;
  body: string;
  headers?: Record<string, string>;
  /** Answer only after this long (ms). */
  delayMs?: number;
}

export class LoopbackService {
  readonly seen: Seen[] = [];
  answer: (request: Seen) => Answer = () => ({ status: 500, body: "" });
  readonly #server: Server;
  base = "";

  constructor() {
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        const request = {
          method: req.method ?? "",
          url: req.url ?? "",
          contentType: req.headers["content-type"],
          authorization: req.headers.authorization,
          body,
        };
        this.seen.push(request);
        const answer = this.answer(request);
        const reply = (): void => {
          if (res.destroyed) return;
          res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers }).end(answer.body);
        };
        if (answer.delayMs) setTimeout(reply, answer.delayMs);
        else reply();
      });
    });
  }

  /** Listens on a free port; `base` is then `http://127.0.0.1:<port>/lambda-url/api`. */
  async start(): Promise<void> {
    this.#server.listen(0, "127.0.0.1");
    await once(this.#server, "listening");
    this.base = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/lambda-url/api`;
  }

  stop(): void {
    this.#server.closeAllConnections();
    this.#server.close();
  }

  /** Answers `answers` in turn, then the last one again. */
  sequence(...answers: Answer[]): void {
    let i = 0;
    this.answer = () => answers[Math.min(i++, answers.length - 1)] as Answer;
  }
}
