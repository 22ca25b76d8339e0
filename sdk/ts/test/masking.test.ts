// Masking through the SDK against the real gateway (plinth serve, memory
// backends): a principal whose role may not reveal PII gets masked answers.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code, ConnectError, createPlinth, type Plinth } from "@plinth/sdk";
import { startServeGateway, unique, type Gateway } from "./gateway.js";

let gw: Gateway;
let admin: Plinth;

before(async () => {
  gw = await startServeGateway(`
[auth.roles.support]
scopes = ["customers.read"]
reveal = []
`);
  admin = createPlinth({ baseUrl: gw.baseUrl, apiKey: gw.adminKey });
});
after(async () => {
  await gw?.stop();
});

test("a caller without the right to reveal PII gets it masked", async () => {
  const email = `ada-${unique()}@example.com`;
  const { customer } = await admin.customers.signUpCustomer({ name: "Ada Lovelace", email, phone: "+14155550100", taxId: "123-45-6789" });

  // A support principal, granted the support role, with its own key.
  const { principal } = await admin.access.createPrincipal({ name: `support-${unique()}`, description: "support desk" });
  await admin.access.grantRole({ principalId: principal!.id, role: "support" });
  const issued = await admin.access.issueApiKey({ principalId: principal!.id, description: "support desk key" });
  assert.match(issued.secret, /^plk_/);
  const keys = [];
  for await (const k of admin.access.listAllApiKeys({ principalId: principal!.id })) keys.push(k);
  assert.deepEqual(keys.map((k) => k.id), [issued.apiKey!.id]);

  const support = createPlinth({ baseUrl: gw.baseUrl, apiKey: issued.secret });
  const seen = (await support.customers.getCustomer({ customerId: customer!.id })).customer!;
  assert.equal(seen.id, customer!.id);
  assert.equal(seen.email, "***@example.com");
  assert.equal(seen.phone, "****0100");
  assert.equal(seen.taxId, "****6789");
  assert.notEqual(seen.name, "Ada Lovelace");

  // The admin sees everything.
  const full = (await admin.customers.getCustomer({ customerId: customer!.id })).customer!;
  assert.equal(full.email, email);
  assert.equal(full.name, "Ada Lovelace");

  // And support may not change anything.
  try {
    await support.customers.approveCustomer({ customerId: customer!.id });
    assert.fail("support approved a customer");
  } catch (e) {
    assert.ok(e instanceof ConnectError);
    assert.equal(e.code, Code.PermissionDenied);
  }
});
