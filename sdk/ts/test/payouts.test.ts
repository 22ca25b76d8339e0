// Runs examples/payouts.ts (compiled) against the real gateway and checks
// what it did.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { createPlinth, ledgerv1, toArray } from "@plinth/sdk";
import { startDevGateway, unique, type Gateway } from "./gateway.js";

const script = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "payouts.js");

let gw: Gateway;
before(async () => {
  gw = await startDevGateway();
});
after(async () => {
  await gw?.stop();
});

interface Result {
  runId: string;
  customer: { id: string; name: string; email: string; state: string };
  settlementAccountId: string;
  payoutClearingAccountId: string;
  walletAccountId: string;
  earningsTransferId: string;
  payout: { status: string; transferId?: string; amount?: string; fee?: string; requested?: string; available?: string };
  owns: { id: string; domain: string; type: string; state: string }[];
  accounts: { id: string; description: string; currency: string; postedBalance: string; availableBalance: string }[];
}

async function run(...args: string[]): Promise<Result> {
  const { stdout } = await promisify(execFile)(process.execPath, [script, "--json", ...args], {
    env: { ...process.env, PLINTH_URL: gw.baseUrl, PLINTH_API_KEY: gw.adminKey },
    timeout: 60_000,
  });
  return JSON.parse(stdout) as Result;
}

test("the instant payouts example pays a contractor out", async () => {
  const email = `contractor-${unique()}@example.com`;
  const runId = unique();
  const r = await run("--run-id", runId, "--name", "Ada Lovelace", "--email", email, "--earnings", "50000", "--payout", "12000", "--fee", "150");
  assert.equal(r.customer.email, email);
  assert.equal(r.customer.state, "APPROVED");
  assert.equal(r.payout.status, "paid");
  assert.match(r.payout.transferId!, /^trf_/);
  // Across every domain, the contractor owns themselves and their wallet.
  assert.deepEqual(r.owns, [
    { id: r.customer.id, domain: "customers", type: "customer", state: "CUSTOMER_STATE_APPROVED" },
    { id: r.walletAccountId, domain: "ledger", type: "ledger_account", state: "LEDGER_ACCOUNT_STATE_OPEN" },
  ]);
  // Their one account is the wallet, holding earnings less payout and fee.
  assert.deepEqual(r.accounts, [
    {
      id: r.walletAccountId,
      description: "contractor earnings wallet",
      currency: "USD",
      postedBalance: String(50000 - 12000 - 150),
      availableBalance: String(50000 - 12000 - 150),
    },
  ]);

  // The ledger agrees.
  const plinth = createPlinth({ baseUrl: gw.baseUrl, apiKey: gw.adminKey });
  const clearing = await plinth.ledger.getBalance({ accountId: r.payoutClearingAccountId });
  assert.equal(clearing.postedBalance, 12000n);
  const settlement = await plinth.ledger.getBalance({ accountId: r.settlementAccountId });
  assert.equal(settlement.postedBalance, -50000n + 150n);
  const { transfer } = await plinth.ledger.getTransfer({ transferId: r.payout.transferId! });
  assert.equal(transfer?.legs.length, 2);
  const wallet = await plinth.ledger.getLedgerAccount({ accountId: r.walletAccountId });
  assert.equal(wallet.account?.customerId, r.customer.id);
  assert.equal(wallet.account?.balancePolicy, ledgerv1.BalancePolicy.NON_NEGATIVE);

  // Run again with the same run id: every step is replayed, nothing happens twice.
  const again = await run("--run-id", runId, "--name", "Ada Lovelace", "--email", email, "--earnings", "50000", "--payout", "12000", "--fee", "150");
  assert.deepEqual(again, r);
  const entries = await toArray(plinth.ledger.listAllEntries({ accountId: r.walletAccountId }));
  assert.equal(entries.length, 3, "one earnings entry, one payout entry, one fee entry");
});

test("the instant payouts example reports what is available when the payout is too large", async () => {
  const r = await run("--run-id", unique(), "--earnings", "10000", "--payout", "10000", "--fee", "150");
  assert.deepEqual(r.payout, { status: "refused", reason: "INSUFFICIENT_FUNDS", requested: "10150", available: "10000" });
  assert.equal(r.accounts.length, 1);
  assert.equal(r.accounts[0]!.postedBalance, "10000");
});
