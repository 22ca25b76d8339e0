// Instant payouts for contractors, on Plinth.
//
// A marketplace pays its contractors: it signs a contractor up, approves
// them, opens a ledger wallet for them, credits their earnings from the
// platform's settlement account, and pays out instantly (to their debit
// card, say), taking a fee in the same atomic transfer. Then it lists what
// the contractor owns across every domain (ListCustomerResources: the
// customer record and their ledger accounts), and their accounts' balances.
//
// Every mutating call's Idempotency-Key is derived from a run id, so running
// it again with the same --run-id (after a crash, say) does nothing twice:
// the gateway replays each answer.
//
//   PLINTH_URL=http://127.0.0.1:8080 PLINTH_API_KEY=plk_... \
//     node dist/examples/payouts.js --name "Ada Lovelace" --email ada@example.com \
//       --earnings 50000 --payout 12000 --fee 150 [--run-id r1] [--json]
//
// Amounts are minor units (cents): 50000 is $500.00.
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  createPlinth,
  customersv1,
  insufficientFunds,
  ledgerv1,
  toArray,
  withIdempotencyKey,
  type Plinth,
} from "@plinth/sdk";

export interface PayoutInput {
  /** Names this run; each mutating call's idempotency key is derived from it. */
  runId: string;
  contractor: { name: string; email: string };
  currency: string;
  /** What the contractor earned, credited to their wallet. */
  earnings: bigint;
  /** What they ask to be paid out now. */
  payout: bigint;
  /** The platform's instant payout fee, taken from the wallet too. */
  fee: bigint;
  /** The platform's settlement account; opened anew when not given. */
  settlementAccountId?: string;
}

export interface AccountSummary {
  id: string;
  description: string;
  currency: string;
  postedBalance: bigint;
  availableBalance: bigint;
}

export interface ResourceSummary {
  id: string;
  domain: string;
  type: string;
  state: string;
}

export interface PayoutResult {
  runId: string;
  customer: { id: string; name: string; email: string; state: string };
  settlementAccountId: string;
  payoutClearingAccountId: string;
  walletAccountId: string;
  earningsTransferId: string;
  payout:
    | { status: "paid"; transferId: string; amount: bigint; fee: bigint }
    | { status: "refused"; reason: "INSUFFICIENT_FUNDS"; requested: bigint; available: bigint };
  /** Everything the contractor owns, across every domain, from ListCustomerResources. */
  owns: ResourceSummary[];
  /** Their ledger accounts with balances, from ListLedgerAccounts filtered by customer. */
  accounts: AccountSummary[];
}

/** Runs the flow; see the top of the file. */
export async function instantPayout(plinth: Plinth, input: PayoutInput): Promise<PayoutResult> {
  const key = (step: string) => withIdempotencyKey(`payouts-${input.runId}-${step}`);
  const { BalancePolicy } = ledgerv1;

  // The platform's own accounts: where earnings come from, where instant
  // payouts go on their way to the contractor's card.
  const settlementAccountId =
    input.settlementAccountId ??
    (await plinth.ledger.openLedgerAccount(
      { currency: input.currency, balancePolicy: BalancePolicy.UNRESTRICTED, description: "platform settlement" },
      key("open-settlement"),
    )).account!.id;
  const clearing = await plinth.ledger.openLedgerAccount(
    { currency: input.currency, balancePolicy: BalancePolicy.UNRESTRICTED, description: "instant payouts in transit" },
    key("open-clearing"),
  );

  // The contractor: signed up, approved, with a wallet that may not go below zero.
  const { customer: signedUp } = await plinth.customers.signUpCustomer(
    { name: input.contractor.name, email: input.contractor.email },
    key("sign-up"),
  );
  await plinth.customers.approveCustomer({ customerId: signedUp!.id }, key("approve"));
  const wallet = await plinth.ledger.openLedgerAccount(
    {
      currency: input.currency,
      customerId: signedUp!.id,
      balancePolicy: BalancePolicy.NON_NEGATIVE,
      description: "contractor earnings wallet",
    },
    key("open-wallet"),
  );
  const walletAccountId = wallet.account!.id;

  // Their earnings, from the platform's settlement account.
  const earned = await plinth.ledger.moveMoney(
    {
      currency: input.currency,
      legs: [{ fromAccountId: settlementAccountId, toAccountId: walletAccountId, amount: input.earnings }],
      description: "contractor earnings",
    },
    key("earnings"),
  );

  // The instant payout and its fee, in one transfer: both or neither.
  let payout: PayoutResult["payout"];
  const legs = [{ fromAccountId: walletAccountId, toAccountId: clearing.account!.id, amount: input.payout }];
  if (input.fee > 0n) {
    legs.push({ fromAccountId: walletAccountId, toAccountId: settlementAccountId, amount: input.fee });
  }
  try {
    const paid = await plinth.ledger.moveMoney(
      { currency: input.currency, legs, description: "instant payout" },
      key("payout"),
    );
    payout = { status: "paid", transferId: paid.transfer!.id, amount: input.payout, fee: input.fee };
  } catch (err) {
    const funds = insufficientFunds(err);
    if (funds === undefined) {
      throw err;
    }
    // Tell the contractor what they can take out instead.
    payout = { status: "refused", reason: "INSUFFICIENT_FUNDS", requested: funds.requested, available: funds.available };
  }

  // What the contractor owns now.
  const { customer } = await plinth.customers.getCustomer({ customerId: signedUp!.id });
  const owns = await toArray(plinth.resources.listAll({ customerId: signedUp!.id }));
  const accounts = await toArray(plinth.ledger.listAllAccounts({ customerId: signedUp!.id }));
  return {
    runId: input.runId,
    customer: {
      id: customer!.id,
      name: customer!.name,
      email: customer!.email,
      state: customersv1.CustomerState[customer!.state],
    },
    settlementAccountId,
    payoutClearingAccountId: clearing.account!.id,
    walletAccountId,
    earningsTransferId: earned.transfer!.id,
    payout,
    owns: owns.map((r) => ({ id: r.id, domain: r.domain, type: r.type, state: r.state })),
    accounts: accounts.map((a) => ({
      id: a.id,
      description: a.description,
      currency: a.currency,
      postedBalance: a.postedBalance,
      availableBalance: a.availableBalance,
    })),
  };
}

function money(amount: bigint, currency: string): string {
  const sign = amount < 0n ? "-" : "";
  const abs = amount < 0n ? -amount : amount;
  return `${sign}${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")} ${currency}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      name: { type: "string", default: "Ada Lovelace" },
      email: { type: "string" },
      currency: { type: "string", default: "USD" },
      earnings: { type: "string", default: "50000" },
      payout: { type: "string", default: "12000" },
      fee: { type: "string", default: "150" },
      "run-id": { type: "string" },
      settlement: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const apiKey = process.env["PLINTH_API_KEY"];
  if (!apiKey) {
    throw new Error("set PLINTH_API_KEY to an API key (plinth dev prints one)");
  }
  const plinth = createPlinth({ baseUrl: process.env["PLINTH_URL"] ?? "http://127.0.0.1:8080", apiKey });
  const runId = values["run-id"] ?? randomUUID();
  const result = await instantPayout(plinth, {
    runId,
    contractor: { name: values.name!, email: values.email ?? `contractor-${runId}@example.com` },
    currency: values.currency!,
    earnings: BigInt(values.earnings!),
    payout: BigInt(values.payout!),
    fee: BigInt(values.fee!),
    ...(values.settlement ? { settlementAccountId: values.settlement } : {}),
  });
  if (values.json) {
    console.log(JSON.stringify(result, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2));
    return;
  }
  const c = result.customer;
  console.log(`contractor ${c.name} <${c.email}> (${c.id}) is ${c.state}`);
  if (result.payout.status === "paid") {
    console.log(`paid out ${money(result.payout.amount, values.currency!)} (fee ${money(result.payout.fee, values.currency!)}) in transfer ${result.payout.transferId}`);
  } else {
    console.log(`payout refused: ${money(result.payout.requested, values.currency!)} requested, ${money(result.payout.available, values.currency!)} available`);
  }
  console.log("everything they own:");
  for (const r of result.owns) {
    console.log(`  ${r.id}  ${r.domain} ${r.type}, ${r.state}`);
  }
  console.log("their ledger accounts:");
  for (const a of result.accounts) {
    console.log(`  ${a.id}  ${a.description}: ${money(a.postedBalance, a.currency)} (available ${money(a.availableBalance, a.currency)})`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error("payouts:", err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
