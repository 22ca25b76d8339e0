// @plinth/sdk: Plinth's clients for Node.js, over @connectrpc/connect-node.
// Browsers (and any runtime with fetch): @plinth/sdk/web.
import { createConnectTransport } from "@connectrpc/connect-node";
import { createPlinthWith, type Plinth, type PlinthOptions } from "./client.js";

export * from "./common.js";

/** Options of createPlinth on Node.js. */
export interface NodePlinthOptions extends PlinthOptions {
  /** "1.1" (default) or "2" (h2c with prior knowledge on http:, ALPN on https:). */
  httpVersion?: "1.1" | "2";
}

/**
 * The clients of every domain of the gateway at options.baseUrl, over
 * Node's HTTP stack: customers, ledger, access, audit and resources. Every call is
 * authenticated with options.apiKey; every mutating call gets an
 * Idempotency-Key, kept across retries; calls that fail for a passing reason
 * are retried with backoff.
 *
 *     const plinth = createPlinth({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.PLINTH_API_KEY! });
 *     const { customer } = await plinth.customers.signUpCustomer({ name: "Ada Lovelace", email: "ada@example.com" });
 */
export function createPlinth(options: NodePlinthOptions): Plinth {
  return createPlinthWith(
    (p) =>
      createConnectTransport({
        baseUrl: p.baseUrl,
        httpVersion: options.httpVersion ?? "1.1",
        interceptors: p.interceptors,
        useBinaryFormat: p.useBinaryFormat,
        ...(p.defaultTimeoutMs === undefined ? {} : { defaultTimeoutMs: p.defaultTimeoutMs }),
      }),
    options,
  );
}
