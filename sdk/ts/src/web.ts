// @plinth/sdk/web: Plinth's clients over fetch (@connectrpc/connect-web), for
// browsers and any runtime with fetch. Install @connectrpc/connect-web beside
// @plinth/sdk to use it.
import { createConnectTransport } from "@connectrpc/connect-web";
import { createPlinthWith, type Plinth, type PlinthOptions } from "./client.js";

export * from "./common.js";

/**
 * The clients of every domain of the gateway at options.baseUrl, over
 * fetch. Same conveniences as createPlinth from @plinth/sdk. An API key is a
 * server-side credential: in a browser, call a gateway through your own
 * backend, or with a key of a principal whose roles grant only what that
 * page needs.
 */
export function createPlinth(options: PlinthOptions): Plinth {
  return createPlinthWith(
    (p) =>
      createConnectTransport({
        baseUrl: p.baseUrl,
        interceptors: p.interceptors,
        useBinaryFormat: p.useBinaryFormat,
        ...(p.defaultTimeoutMs === undefined ? {} : { defaultTimeoutMs: p.defaultTimeoutMs }),
      }),
    options,
  );
}
