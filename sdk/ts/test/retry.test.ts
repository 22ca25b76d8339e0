// The retry interceptor against a tiny local Connect server that fails a
// given number of times, then succeeds.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  Code,
  ConnectError,
  IDEMPOTENCY_KEY_HEADER,
  RetryInfoSchema,
  backoffDelayMs,
  createPlinth,
  customersv1,
  isRetryableCode,
  withIdempotencyKey,
  type Plinth,
  type RetryInfo,
  type RetryOptions,
} from "@plinth/sdk";

/** What the server saw of one attempt. */
interface Attempt {
  procedure: string;
  idempotencyKey: string | null;
  authorization: string | null;
  timeoutMs: string | null;
}

let attempts: Attempt[] = [];
/**
 * The codes the next attempts fail with, in order (with a RetryInfo delay
 * in ms, for a hinted failure); then they succeed.
 */
let failures: (Code | { code: Code; retryDelayMs: number })[] = [];
let server: Server;
let baseUrl: string;

function record(procedure: string, header: Headers) {
  attempts.push({
    procedure,
    idempotencyKey: header.get(IDEMPOTENCY_KEY_HEADER),
    authorization: header.get("Authorization"),
    timeoutMs: header.get("Connect-Timeout-Ms"),
  });
  const f = failures.shift();
  if (typeof f === "object") {
    const delay = create(DurationSchema, { seconds: BigInt(Math.floor(f.retryDelayMs / 1000)), nanos: (f.retryDelayMs % 1000) * 1e6 });
    throw new ConnectError(`attempt ${attempts.length} fails`, f.code, undefined, [
      { desc: RetryInfoSchema, value: { retryDelay: delay } },
    ]);
  }
  if (f !== undefined) {
    throw new ConnectError(`attempt ${attempts.length} fails`, f);
  }
}

before(async () => {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(customersv1.CustomerService, {
        signUpCustomer(req, ctx) {
          record("SignUpCustomer", ctx.requestHeader);
          return { customer: { id: "cus_01HZZZZZZZZZZZZZZZZZZZZZZZ", name: req.name, email: req.email } };
        },
        getCustomer(req, ctx) {
          record("GetCustomer", ctx.requestHeader);
          return { customer: { id: req.customerId } };
        },
      }),
  });
  server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  attempts = [];
  failures = [];
});

function client(retry: RetryOptions = {}): { plinth: Plinth; retries: RetryInfo[] } {
  const retries: RetryInfo[] = [];
  const plinth = createPlinth({
    baseUrl,
    apiKey: "plk_test_secret",
    retry: { initialBackoffMs: 5, maxBackoffMs: 20, onRetry: (i) => retries.push(i), ...retry },
  });
  return { plinth, retries };
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConnectError, `want a ConnectError, got ${String(e)}`);
    return e;
  }
  assert.fail("the call succeeded; want an error");
}

describe("retries", () => {
  test("a mutating call is retried on retryable codes with the same idempotency key", async () => {
    failures = [Code.Unavailable, Code.Aborted, { code: Code.ResourceExhausted, retryDelayMs: 15 }];
    const { plinth, retries } = client();
    const res = await plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" });
    assert.equal(res.customer?.email, "ada@example.com");
    assert.equal(attempts.length, 4);
    const key = attempts[0]!.idempotencyKey;
    assert.ok(key, "the first attempt has a key");
    assert.match(key, /^[0-9a-f]{32}$/);
    for (const a of attempts) {
      assert.equal(a.idempotencyKey, key, "every attempt carries the same key");
      assert.equal(a.authorization, "Bearer plk_test_secret");
    }
    assert.deepEqual(retries.map((r) => [r.attempt, r.error.code, r.procedure]), [
      [1, Code.Unavailable, "/plinth.customers.v1.CustomerService/SignUpCustomer"],
      [2, Code.Aborted, "/plinth.customers.v1.CustomerService/SignUpCustomer"],
      [3, Code.ResourceExhausted, "/plinth.customers.v1.CustomerService/SignUpCustomer"],
    ]);
  });

  test("resource_exhausted is retried only when the gateway says when, and not sooner", async () => {
    failures = [Code.ResourceExhausted];
    let { plinth } = client();
    const err = await failure(plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" }));
    assert.equal(err.code, Code.ResourceExhausted);
    assert.equal(attempts.length, 1, "a body too large (no hint) is not sent again");

    attempts = [];
    failures = [{ code: Code.ResourceExhausted, retryDelayMs: 18 }];
    const c = client();
    await c.plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" });
    assert.equal(attempts.length, 2);
    assert.ok(c.retries[0]!.delayMs >= 18, `waited ${c.retries[0]!.delayMs} ms, want at least the hint`);

    attempts = [];
    failures = [{ code: Code.ResourceExhausted, retryDelayMs: 60_000 }];
    ({ plinth } = client());
    await failure(plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" }));
    assert.equal(attempts.length, 1, "a hint beyond the backoff cap ends the retries");
  });

  test("each call gets its own key, and a key the caller set is kept", async () => {
    const { plinth } = client();
    await plinth.customers.signUpCustomer({ name: "A", email: "a@example.com" });
    await plinth.customers.signUpCustomer({ name: "B", email: "b@example.com" });
    failures = [Code.Unavailable];
    await plinth.customers.signUpCustomer({ name: "C", email: "c@example.com" }, withIdempotencyKey("mine-1"));
    const keys = attempts.map((a) => a.idempotencyKey);
    assert.notEqual(keys[0], keys[1]);
    assert.deepEqual(keys.slice(2), ["mine-1", "mine-1"]);
  });

  test("reads get no idempotency key", async () => {
    const { plinth } = client();
    await plinth.customers.getCustomer({ customerId: "cus_01HZZZZZZZZZZZZZZZZZZZZZZZ" });
    assert.equal(attempts[0]!.idempotencyKey, null);
  });

  test("attempts are bounded", async () => {
    failures = Array(10).fill(Code.Unavailable);
    const { plinth, retries } = client({ maxAttempts: 3 });
    const err = await failure(plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" }));
    assert.equal(err.code, Code.Unavailable);
    assert.equal(attempts.length, 3);
    assert.equal(retries.length, 2);
  });

  test("other codes are not retried", async () => {
    for (const code of [Code.InvalidArgument, Code.FailedPrecondition, Code.Internal, Code.Unauthenticated, Code.NotFound]) {
      attempts = [];
      failures = [code];
      const { plinth } = client();
      const err = await failure(plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" }));
      assert.equal(err.code, code);
      assert.equal(attempts.length, 1, `${Code[code]} must not be retried`);
    }
  });

  test("DeadlineExceeded is retried for reads only", async () => {
    const { plinth } = client();
    failures = [Code.DeadlineExceeded];
    const err = await failure(plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" }));
    assert.equal(err.code, Code.DeadlineExceeded);
    assert.equal(attempts.length, 1);

    attempts = [];
    failures = [Code.DeadlineExceeded, Code.DeadlineExceeded];
    await plinth.customers.getCustomer({ customerId: "cus_01HZZZZZZZZZZZZZZZZZZZZZZZ" });
    assert.equal(attempts.length, 3);
  });

  test("a mutating call without a key is not retried", async () => {
    failures = [Code.Unavailable];
    const plinth = createPlinth({ baseUrl, apiKey: "plk_test_secret", idempotencyKeys: false, retry: { initialBackoffMs: 1 } });
    const err = await failure(plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" }));
    assert.equal(err.code, Code.Unavailable);
    assert.equal(attempts.length, 1);
  });

  test("retry: false turns retries off", async () => {
    failures = [Code.Unavailable];
    const plinth = createPlinth({ baseUrl, apiKey: "plk_test_secret", retry: false });
    await failure(plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" }));
    assert.equal(attempts.length, 1);
  });

  test("aborting stops the retries at once", async () => {
    failures = Array(10).fill(Code.Unavailable);
    const { plinth } = client({ initialBackoffMs: 60_000, maxBackoffMs: 60_000, random: () => 0.99 });
    const controller = new AbortController();
    const started = Date.now();
    const call = plinth.customers.signUpCustomer({ name: "Ada", email: "ada@example.com" }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const err = await failure(call);
    assert.equal(err.code, Code.Canceled);
    assert.ok(Date.now() - started < 5_000, "the abort must not wait out the backoff");
    assert.equal(attempts.length, 1);
  });

  test("a call's timeout bounds all its attempts, and each attempt is told the time left", async () => {
    failures = Array(10).fill(Code.Unavailable);
    const { plinth } = client({ maxAttempts: 10, initialBackoffMs: 100, maxBackoffMs: 100, random: () => 0.99 });
    const started = Date.now();
    const err = await failure(plinth.customers.getCustomer({ customerId: "cus_01HZZZZZZZZZZZZZZZZZZZZZZZ" }, { timeoutMs: 350 }));
    assert.ok([Code.DeadlineExceeded, Code.Unavailable].includes(err.code), `got ${Code[err.code]}`);
    assert.ok(Date.now() - started < 2_000);
    assert.ok(attempts.length >= 2 && attempts.length <= 4, `got ${attempts.length} attempts`);
    const timeouts = attempts.map((a) => Number(a.timeoutMs));
    assert.ok(timeouts[0]! <= 350);
    for (let i = 1; i < timeouts.length; i++) {
      assert.ok(timeouts[i]! < timeouts[i - 1]!, `the time left shrinks: ${timeouts.join(", ")}`);
    }
  });

  test("backoff is exponential with full jitter, capped", () => {
    const o = { initialBackoffMs: 100, maxBackoffMs: 1000 };
    assert.equal(backoffDelayMs(1, { ...o, random: () => 0 }), 0);
    assert.equal(backoffDelayMs(1, { ...o, random: () => 0.5 }), 50);
    assert.equal(backoffDelayMs(2, { ...o, random: () => 0.5 }), 100);
    assert.equal(backoffDelayMs(3, { ...o, random: () => 0.5 }), 200);
    assert.equal(backoffDelayMs(10, { ...o, random: () => 0.5 }), 500);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelayMs(4, o);
      assert.ok(d >= 0 && d < 800);
    }
    assert.equal(isRetryableCode(Code.DeadlineExceeded, false), true);
    assert.equal(isRetryableCode(Code.DeadlineExceeded, true), false);
    assert.equal(isRetryableCode(Code.Internal, false), false);
  });
});
