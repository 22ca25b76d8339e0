// The resources domain through the SDK against the real gateway (plinth
// dev): everything a customer owns, across the customers and ledger
// domains, page after page; one resource by id; the refusals.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, ErrorReason, createPlinth, errorInfo, ledgerv1, toArray, type Plinth } from "@plinth/sdk";
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

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConnectError, `want a ConnectError, got ${String(e)}`);
    return e;
  }
  assert.fail("the call succeeded; want an error");
}

describe("resources", () => {
  test("listAll pages through the customer and their accounts, and nothing sensitive", async () => {
    const { customer } = await plinth.customers.signUpCustomer({ name: "Ada Lovelace", email: `ada-${unique()}@example.com` });
    const accounts: string[] = [];
    for (const currency of ["USD", "EUR", "GBP"]) {
      const { account } = await plinth.ledger.openLedgerAccount({
        currency,
        customerId: customer!.id,
        balancePolicy: ledgerv1.BalancePolicy.NON_NEGATIVE,
        description: "Ada's private wallet",
      });
      accounts.push(account!.id);
    }
    await plinth.ledger.openLedgerAccount({ currency: "USD", balancePolicy: ledgerv1.BalancePolicy.UNRESTRICTED }); // the platform's

    const all = await toArray(plinth.resources.listAll({ customerId: customer!.id, pageSize: 2 }));
    assert.deepEqual(
      all.map((r) => [r.id, r.domain, r.type, r.state, r.customerId]),
      [
        [customer!.id, "customers", "customer", "CUSTOMER_STATE_PENDING", customer!.id],
        ...accounts.map((id) => [id, "ledger", "ledger_account", "LEDGER_ACCOUNT_STATE_OPEN", customer!.id]),
      ],
    );
    assert.deepEqual(all.map((r) => r.attributes["currency"]), [undefined, "USD", "EUR", "GBP"]);
    const text = JSON.stringify(all, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    for (const secret of ["Ada", "@example.com", "private"]) {
      assert.ok(!text.includes(secret), `a resource shows ${secret}: ${text}`);
    }

    const { resource } = await plinth.resources.getResource({ resourceId: accounts[1]! });
    assert.equal(resource?.type, "ledger_account");
    assert.equal(resource?.attributes["balance_policy"], "BALANCE_POLICY_NON_NEGATIVE");
  });

  test("an unknown customer is not_found; a transfer's id is no resource", async () => {
    const unknown = await failure(toArray(plinth.resources.listAll({ customerId: "cus_01JQ0000000000000000000000" })));
    assert.equal(unknown.code, Code.NotFound);

    const notResource = await failure(plinth.resources.getResource({ resourceId: "trf_01JQ0000000000000000000000" }));
    assert.equal(notResource.code, Code.InvalidArgument);
    const info = errorInfo(notResource);
    assert.equal(info?.reason, ErrorReason.UnknownResourcePrefix);
    assert.equal(info?.metadata["prefix"], "trf");
    assert.equal(info?.metadata["known_prefixes"], "cus,lac");
  });
});
