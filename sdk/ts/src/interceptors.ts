import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { mutates } from "./capability.js";
import { retryDelayMs } from "./retryhint.js";

/** The request header that carries an idempotency key. */
export const IDEMPOTENCY_KEY_HEADER = "Idempotency-Key";

/** The response header the gateway sets on an answer replayed for a key. */
export const IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed";

/** A source of API keys: the key itself, or a function for keys that rotate. */
export type ApiKeySource = string | (() => string | Promise<string>);

/**
 * An interceptor that authenticates every call with an API key, as
 * "Authorization: Bearer plk_...". Keep keys out of source code and logs.
 */
export function authInterceptor(apiKey: ApiKeySource): Interceptor {
  if (typeof apiKey === "string" && apiKey === "") {
    throw new Error("plinth: apiKey is empty");
  }
  return (next) => async (req) => {
    const key = typeof apiKey === "string" ? apiKey : await apiKey();
    req.header.set("Authorization", `Bearer ${key}`);
    return next(req);
  };
}

/**
 * A new random idempotency key: 32 hex digits, as the Go SDK makes them.
 * Keys only need to be unique per caller; keys derived from your own ids
 * ("payout-<id>") are better still, since they survive a restart of your
 * process.
 */
export function newIdempotencyKey(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Call options that send `key` as the Idempotency-Key of one call, e.g.
 * `plinth.ledger.moveMoney(req, withIdempotencyKey("payout-42"))`. Retries
 * of the call (by the retry interceptor, or your own with the same key) get
 * the first answer instead of doing the work twice.
 */
export function withIdempotencyKey(key: string): { headers: Record<string, string> } {
  return { headers: { [IDEMPOTENCY_KEY_HEADER]: key } };
}

/**
 * An interceptor that gives every call of a mutating capability (as its
 * contract's plinth.options.v1.capability option says) a fresh
 * Idempotency-Key, unless the call has one already. It sets the key once,
 * before any retry, so every attempt of a call carries the same key.
 */
export function idempotencyInterceptor(newKey: () => string = newIdempotencyKey): Interceptor {
  return (next) => async (req) => {
    if (!req.stream && mutates(req.method) && !req.header.has(IDEMPOTENCY_KEY_HEADER)) {
      req.header.set(IDEMPOTENCY_KEY_HEADER, newKey());
    }
    return next(req);
  };
}

/** How the retry interceptor retries. */
export interface RetryOptions {
  /** Attempts in all, the first included; 1 means no retry. Default 4. */
  maxAttempts?: number;
  /** The backoff cap of the first retry, in ms. Default 100. */
  initialBackoffMs?: number;
  /** The largest backoff cap, in ms. Default 5000. */
  maxBackoffMs?: number;
  /** Random numbers in [0, 1) for the jitter. Default Math.random. */
  random?: () => number;
  /** Told before each retry: which attempt failed, how, and the wait. */
  onRetry?: (info: RetryInfo) => void;
}

/** What the retry interceptor tells onRetry. */
export interface RetryInfo {
  /** The procedure, e.g. "/plinth.ledger.v1.LedgerService/MoveMoney". */
  procedure: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  error: ConnectError;
  delayMs: number;
}

const defaultRetry: Required<Omit<RetryOptions, "onRetry">> = {
  maxAttempts: 4,
  initialBackoffMs: 100,
  maxBackoffMs: 5000,
  random: Math.random,
};

/**
 * Whether a call that failed with `code` may be tried again: Unavailable
 * and Aborted (for a mutating call: the same key is still running) always;
 * ResourceExhausted only when the gateway said when to retry (`hinted`: a
 * rate limit, not a body too large, which would fail again);
 * DeadlineExceeded only for a call that does not change state, since the
 * gateway may have done the work. The Go SDK decides the same way.
 */
export function isRetryableCode(code: Code, mutating: boolean, hinted = false): boolean {
  switch (code) {
    case Code.Unavailable:
    case Code.Aborted:
      return true;
    case Code.ResourceExhausted:
      return hinted;
    case Code.DeadlineExceeded:
      return !mutating;
    default:
      return false;
  }
}

/**
 * The wait before retry number `retry` (1 for the first retry): exponential
 * backoff with full jitter, a random time between 0 and
 * min(maxBackoffMs, initialBackoffMs * 2^(retry-1)).
 */
export function backoffDelayMs(retry: number, options: RetryOptions = {}): number {
  const o = { ...defaultRetry, ...options };
  const cap = Math.min(o.maxBackoffMs, o.initialBackoffMs * 2 ** (retry - 1));
  return Math.floor(o.random() * cap);
}

const connectTimeoutHeader = "Connect-Timeout-Ms";

/**
 * An interceptor that retries unary calls that failed with a retryable code
 * (see isRetryableCode), with exponential backoff and full jitter (waiting
 * at least what the gateway's RetryInfo or Retry-After asks), at most
 * maxAttempts times in all. It sends the same request, headers included, on
 * every attempt, so a mutating call keeps its Idempotency-Key and the
 * gateway replays the first answer rather than doing the work twice; a
 * mutating call without a key is never retried. It stops at once when the
 * call's signal aborts (the caller's signal or the call's timeout), which
 * bounds all attempts together.
 */
export function retryInterceptor(options: RetryOptions = {}): Interceptor {
  const o = { ...defaultRetry, ...options };
  if (!(Number.isInteger(o.maxAttempts) && o.maxAttempts >= 1)) {
    throw new Error(`plinth: retry.maxAttempts must be an integer of at least 1, got ${o.maxAttempts}`);
  }
  return (next) => async (req) => {
    if (req.stream) {
      return next(req);
    }
    const mutating = mutates(req.method);
    if (mutating && !req.header.has(IDEMPOTENCY_KEY_HEADER)) {
      return next(req);
    }
    // The Connect protocol tells the server the time left; keep it true
    // on every attempt.
    const timeout = Number(req.header.get(connectTimeoutHeader) ?? NaN);
    const deadline = Number.isFinite(timeout) ? Date.now() + timeout : undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (e) {
        const error = ConnectError.from(e);
        const hintMs = retryDelayMs(error);
        if (attempt >= o.maxAttempts || req.signal.aborted || !isRetryableCode(error.code, mutating, hintMs !== undefined)) {
          throw e;
        }
        // The gateway's hint is a floor; one beyond the backoff cap ends
        // the retries rather than stalling the caller.
        if (hintMs !== undefined && hintMs > o.maxBackoffMs) {
          throw e;
        }
        const delayMs = Math.max(backoffDelayMs(attempt, o), hintMs ?? 0);
        if (deadline !== undefined && Date.now() + delayMs >= deadline) {
          throw e;
        }
        o.onRetry?.({ procedure: procedureOf(req.url), attempt, error, delayMs });
        await sleep(delayMs, req.signal);
        if (deadline !== undefined) {
          req.header.set(connectTimeoutHeader, String(Math.max(1, deadline - Date.now())));
        }
      }
    }
  };
}

function procedureOf(url: string): string {
  const parts = new URL(url).pathname.split("/");
  return "/" + parts.slice(-2).join("/");
}

/** Waits ms, or rejects as soon as signal aborts, with its reason. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(ConnectError.from(signal.reason, Code.Canceled));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
