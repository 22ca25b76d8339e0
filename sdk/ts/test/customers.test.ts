// The SDK against the real gateway (plinth dev): customers, idempotency,
// validation errors, pagination, the fetch transport.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  Code,
  ConnectError,
  ErrorReason,
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENT_REPLAYED_HEADER,
  createPlinth,
  customersv1,
  errorReason,
  fieldViolations,
  isReplayed,
  pages,
  toArray,
  withIdempotencyKey,
  type Interceptor,
  type Plinth,
} from "@plinth/sdk";
import { createPlinth as createWebPlinth } from "@plinth/sdk/web";
import { startDevGateway, unique, type Gateway } from "./gateway.js";

let gw: Gateway;
let plinth: Plinth;

before(async () => {
  gw = await startDevGateway();
  plinth = createPlinth({ baseUrl: gw.baseUrl, apiKey: gw.adminKey });
});
after(async () => {
  await gw?.stop();
});

/** Rejects with the ConnectError a call failed with. */
async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConnectError, `want a ConnectError, got ${String(e)}`);
    return e;
  }
  assert.fail("the call succeeded; want an error");
}

describe("customers", () => {
  test("sign up a customer and get them back", async () => {
    const email = `ada-${unique()}@example.com`;
    const { customer } = await plinth.customers.signUpCustomer({
      name: "Ada Lovelace",
      email,
      phone: "+14155550100",
      address: { line1: "12 St James's Square", city: "London", postalCode: "SW1Y 4JH", countryCode: "GB" },
    });
    assert.ok(customer);
    assert.match(customer.id, /^cus_[0-9A-Z]{26}$/);
    assert.equal(customer.state, customersv1.CustomerState.PENDING);
    // The admin role reveals every class: nothing is masked.
    assert.equal(customer.email, email);
    assert.equal(customer.name, "Ada Lovelace");

    const got = await plinth.customers.getCustomer({ customerId: customer.id });
    assert.equal(got.customer?.id, customer.id);
    assert.equal(got.customer?.email, email);
    assert.equal(got.customer?.phone, "+14155550100");
    assert.equal(got.customer?.address?.city, "London");
    assert.ok(got.customer?.createdAt);

    const found = await plinth.customers.findCustomerByEmail({ email: email.toUpperCase() });
    assert.equal(found.customer?.id, customer.id);
  });

  test("a retry with the same idempotency key gets the first answer, marked replayed", async () => {
    const key = `sign-up-${unique()}`;
    const req = { name: "Grace Hopper", email: `grace-${unique()}@example.com` };
    let first: Headers | undefined;
    let second: Headers | undefined;
    const a = await plinth.customers.signUpCustomer(req, { ...withIdempotencyKey(key), onHeader: (h) => (first = h) });
    const b = await plinth.customers.signUpCustomer(req, { ...withIdempotencyKey(key), onHeader: (h) => (second = h) });
    assert.equal(b.customer?.id, a.customer?.id, "the retry must answer with the same customer");
    assert.deepEqual(b, a);
    assert.ok(first && second);
    assert.equal(isReplayed(first), false);
    assert.equal(isReplayed(second), true);
    assert.equal(second.get(IDEMPOTENT_REPLAYED_HEADER), "true");

    // Only one customer was signed up: another key for the same email is refused.
    const dup = await failure(plinth.customers.signUpCustomer(req));
    assert.equal(dup.code, Code.AlreadyExists);
    assert.equal(errorReason(dup), ErrorReason.EmailTaken);

    // The same key with another request is refused.
    const other = await failure(
      plinth.customers.signUpCustomer({ ...req, email: `other-${unique()}@example.com` }, withIdempotencyKey(key)),
    );
    assert.equal(other.code, Code.FailedPrecondition);
  });

  test("a retry after a lost answer reuses the key, and the gateway replays the answer", async () => {
    // The gateway answers the first attempt, but the answer is "lost" on
    // its way back: the retry interceptor tries again with the same key.
    const keys: (string | null)[] = [];
    let lost = false;
    const loseFirstAnswer: Interceptor = (next) => async (req) => {
      keys.push(req.header.get(IDEMPOTENCY_KEY_HEADER));
      const res = await next(req);
      if (!lost) {
        lost = true;
        throw new ConnectError("the connection dropped after the gateway answered", Code.Unavailable);
      }
      return res;
    };
    const flaky = createPlinth({ baseUrl: gw.baseUrl, apiKey: gw.adminKey, interceptors: [loseFirstAnswer], retry: { initialBackoffMs: 1 } });
    const email = `lost-${unique()}@example.com`;
    let header: Headers | undefined;
    const { customer } = await flaky.customers.signUpCustomer({ name: "Lost Answer", email }, { onHeader: (h) => (header = h) });
    assert.equal(keys.length, 2);
    assert.ok(keys[0]);
    assert.equal(keys[1], keys[0], "the retry must send the same Idempotency-Key");
    assert.equal(isReplayed(header!), true, "the second answer is the first one, replayed");
    // Signed up once: the customer found by email is the one we got.
    const found = await plinth.customers.findCustomerByEmail({ email });
    assert.equal(found.customer?.id, customer?.id);
  });

  test("every mutating call gets its own idempotency key", async () => {
    const a = await plinth.customers.signUpCustomer({ name: "A", email: `a-${unique()}@example.com` });
    const b = await plinth.customers.signUpCustomer({ name: "B", email: `b-${unique()}@example.com` });
    assert.notEqual(a.customer?.id, b.customer?.id);

    // Without the SDK's keys the gateway refuses a mutating call...
    const bare = createPlinth({ baseUrl: gw.baseUrl, apiKey: gw.adminKey, idempotencyKeys: false });
    const err = await failure(bare.customers.signUpCustomer({ name: "C", email: `c-${unique()}@example.com` }));
    assert.equal(err.code, Code.InvalidArgument);
    assert.match(err.rawMessage, /Idempotency-Key/);
    // ...and still answers reads.
    await bare.customers.getCustomer({ customerId: a.customer!.id });
  });

  test("a request that breaks the contract lists every violated field", async () => {
    const err = await failure(plinth.customers.signUpCustomer({ name: "", email: "not-an-email", phone: "12" }));
    assert.equal(err.code, Code.InvalidArgument);
    const violations = fieldViolations(err);
    const fields = violations.map((v) => v.field).sort();
    assert.deepEqual(fields, ["email", "name", "phone"]);
    const email = violations.find((v) => v.field === "email")!;
    assert.equal(email.ruleId, "string.email");
    assert.equal(email.rule, "string.email");
    assert.ok(email.message.length > 0);

    // Nested and repeated fields have paths.
    const legErr = await failure(
      plinth.ledger.moveMoney({
        currency: "usd",
        legs: [{ fromAccountId: "lac_00000000000000000000000000", toAccountId: "lac_00000000000000000000000001", amount: 0n }],
      }),
    );
    assert.deepEqual(fieldViolations(legErr).map((v) => v.field).sort(), ["currency", "legs[0].amount"]);
    // Other errors have none.
    assert.deepEqual(fieldViolations(new ConnectError("x", Code.InvalidArgument)), []);
    assert.deepEqual(fieldViolations(new Error("x")), []);
  });

  test("an illegal change of state says why", async () => {
    const { customer } = await plinth.customers.signUpCustomer({ name: "Alan Turing", email: `alan-${unique()}@example.com` });
    const approved = await plinth.customers.approveCustomer({ customerId: customer!.id });
    assert.equal(approved.customer?.state, customersv1.CustomerState.APPROVED);
    const err = await failure(plinth.customers.approveCustomer({ customerId: customer!.id }));
    assert.equal(err.code, Code.FailedPrecondition);
    assert.equal(errorReason(err), ErrorReason.IllegalTransition);
  });

  test("a bad API key is unauthenticated", async () => {
    const stranger = createPlinth({ baseUrl: gw.baseUrl, apiKey: "plk_nope_nope" });
    const err = await failure(stranger.customers.listCustomers({}));
    assert.equal(err.code, Code.Unauthenticated);
  });

  test("pagination iterates every page", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) {
      const { customer } = await plinth.customers.signUpCustomer({ name: `Payee ${i}`, email: `payee-${i}-${unique()}@example.com` });
      await plinth.customers.approveCustomer({ customerId: customer!.id });
      ids.add(customer!.id);
    }
    // Page by page, three at a time.
    let pageCount = 0;
    const seen: string[] = [];
    for await (const page of pages((pageToken) => plinth.customers.listCustomers({ pageSize: 3, pageToken }))) {
      pageCount++;
      assert.ok(page.customers.length <= 3);
      seen.push(...page.customers.map((c) => c.id));
    }
    assert.ok(pageCount >= 3, `want at least 3 pages, got ${pageCount}`);
    assert.equal(new Set(seen).size, seen.length, "no customer twice");
    for (const id of ids) {
      assert.ok(seen.includes(id), `${id} missing`);
    }

    // Item by item, with a filter.
    const all = await toArray(plinth.customers.listAll({ pageSize: 2, state: customersv1.CustomerState.APPROVED }));
    assert.ok(all.every((c) => c.state === customersv1.CustomerState.APPROVED));
    for (const id of ids) {
      assert.ok(all.some((c) => c.id === id), `${id} missing from listAll`);
    }

    // Breaking out stops fetching.
    let n = 0;
    for await (const c of plinth.customers.listAll({ pageSize: 2 })) {
      assert.ok(c.id);
      if (++n === 3) break;
    }
    assert.equal(n, 3);
  });

  test("the fetch transport (@plinth/sdk/web) has the same conveniences", async () => {
    const web = createWebPlinth({ baseUrl: gw.baseUrl, apiKey: gw.adminKey });
    const email = `web-${unique()}@example.com`;
    const key = `web-${unique()}`;
    const a = await web.customers.signUpCustomer({ name: "Web Person", email }, withIdempotencyKey(key));
    let replayed: Headers | undefined;
    const b = await web.customers.signUpCustomer({ name: "Web Person", email }, { ...withIdempotencyKey(key), onHeader: (h) => (replayed = h) });
    assert.equal(b.customer?.id, a.customer?.id);
    assert.equal(isReplayed(replayed!), true);
    const got = await web.customers.getCustomer({ customerId: a.customer!.id });
    assert.equal(got.customer?.email, email);
    const err = await failure(web.customers.signUpCustomer({ name: "", email }));
    assert.deepEqual(fieldViolations(err).map((v) => v.field), ["name"]);
  });
});
