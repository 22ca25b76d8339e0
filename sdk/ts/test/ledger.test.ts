// The ledger through the SDK against the real gateway (plinth dev): money
// moves, insufficient funds with the available balance, paging transfers.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  Code,
  ConnectError,
  ErrorReason,
  createPlinth,
  errorInfo,
  insufficientFunds,
  isReplayed,
  ledgerv1,
  toArray,
  withIdempotencyKey,
  type Plinth,
} from "@plinth/sdk";
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

async function openAccounts(overdraftLimit = 0n) {
  const settlement = await plinth.ledger.openLedgerAccount({
    currency: "USD",
    balancePolicy: ledgerv1.BalancePolicy.UNRESTRICTED,
    description: "platform settlement",
  });
  const wallet = await plinth.ledger.openLedgerAccount({
    currency: "USD",
    balancePolicy: ledgerv1.BalancePolicy.NON_NEGATIVE,
    overdraftLimit,
    description: "wallet",
  });
  return { settlementId: settlement.account!.id, walletId: wallet.account!.id };
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

describe("ledger", () => {
  test("insufficient funds says how much is available", async () => {
    const { settlementId, walletId } = await openAccounts();
    await plinth.ledger.moveMoney({ currency: "USD", legs: [{ fromAccountId: settlementId, toAccountId: walletId, amount: 1000n }] });

    const key = `overdraw-${unique()}`;
    const overdraw = { currency: "USD", legs: [{ fromAccountId: walletId, toAccountId: settlementId, amount: 1500n }] };
    const err = await failure(plinth.ledger.moveMoney(overdraw, withIdempotencyKey(key)));
    assert.equal(err.code, Code.FailedPrecondition);
    assert.equal(errorInfo(err)?.reason, ErrorReason.InsufficientFunds);
    assert.deepEqual(insufficientFunds(err), {
      accountId: walletId,
      currency: "USD",
      available: 1000n,
      floor: 0n,
      requested: 1500n,
    });
    assert.equal(isReplayed(err), false);

    // A refusal is a final answer: the retry gets it again, replayed.
    const again = await failure(plinth.ledger.moveMoney(overdraw, withIdempotencyKey(key)));
    assert.equal(isReplayed(again), true);
    assert.equal(insufficientFunds(again)?.available, 1000n);

    // Nothing moved.
    const balance = await plinth.ledger.getBalance({ accountId: walletId });
    assert.equal(balance.postedBalance, 1000n);
    assert.equal(balance.availableBalance, 1000n);

    // Other errors are not insufficient funds.
    assert.equal(insufficientFunds(new ConnectError("x", Code.FailedPrecondition)), undefined);
    assert.equal(insufficientFunds(new Error("x")), undefined);
  });

  test("the floor is minus the overdraft limit", async () => {
    const { settlementId, walletId } = await openAccounts(500n);
    const err = await failure(
      plinth.ledger.moveMoney({ currency: "USD", legs: [{ fromAccountId: walletId, toAccountId: settlementId, amount: 501n }] }),
    );
    assert.deepEqual(insufficientFunds(err), { accountId: walletId, currency: "USD", available: 0n, floor: -500n, requested: 501n });
    // Within the overdraft it moves.
    await plinth.ledger.moveMoney({ currency: "USD", legs: [{ fromAccountId: walletId, toAccountId: settlementId, amount: 500n }] });
    assert.equal((await plinth.ledger.getBalance({ accountId: walletId })).postedBalance, -500n);
  });

  test("transfers and entries page through every page", async () => {
    const { settlementId, walletId } = await openAccounts();
    const transferIds: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const { transfer } = await plinth.ledger.moveMoney({
        currency: "USD",
        legs: [{ fromAccountId: settlementId, toAccountId: walletId, amount: BigInt(i * 100) }],
        description: `top-up ${i}`,
      });
      transferIds.push(transfer!.id);
    }
    const transfers = await toArray(plinth.ledger.listAllTransfers({ accountId: walletId, pageSize: 2 }));
    assert.deepEqual(transfers.map((t) => t.id).sort(), [...transferIds].sort());

    const entries = await toArray(plinth.ledger.listAllEntries({ accountId: walletId, pageSize: 2 }));
    assert.deepEqual(entries.map((e) => e.amount), [100n, 200n, 300n, 400n, 500n]);
    assert.deepEqual(entries.map((e) => e.balanceAfter), [100n, 300n, 600n, 1000n, 1500n]);
  });
});
