import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  AccessService,
  type ApiKey,
  type ListApiKeysRequestSchema,
  type ListPrincipalsRequestSchema,
  type Principal,
} from "./gen/plinth/access/v1/access_pb.js";
import { AuditService, type AuditRecord, type ListAuditRecordsRequestSchema } from "./gen/plinth/audit/v1/audit_pb.js";
import { CustomerService, type Customer, type ListCustomersRequestSchema } from "./gen/plinth/customers/v1/customers_pb.js";
import {
  LedgerService,
  type Entry,
  type LedgerAccount,
  type ListAccountEntriesRequestSchema,
  type ListLedgerAccountsRequestSchema,
  type ListTransfersRequestSchema,
  type Transfer,
} from "./gen/plinth/ledger/v1/ledger_pb.js";
import { ResourceService, type ListCustomerResourcesRequestSchema, type Resource } from "./gen/plinth/resources/v1/resources_pb.js";
import {
  authInterceptor,
  idempotencyInterceptor,
  retryInterceptor,
  type ApiKeySource,
  type RetryOptions,
} from "./interceptors.js";
import { paginate } from "./paginate.js";

/** Options of createPlinth, whichever transport carries the calls. */
export interface PlinthOptions {
  /** The gateway's URL, e.g. "http://127.0.0.1:8080". */
  baseUrl: string;
  /** The API key ("plk_..."), or a function that returns the current one. */
  apiKey: ApiKeySource;
  /**
   * Give every mutating call a fresh Idempotency-Key unless it has one
   * (withIdempotencyKey). Default true. Without keys the gateway refuses
   * mutating calls, and the SDK does not retry them.
   */
  idempotencyKeys?: boolean;
  /** How to retry calls that failed for a passing reason; false: never. */
  retry?: RetryOptions | false;
  /** A timeout for every call, in ms, unless the call sets its own; covers its retries too. */
  timeoutMs?: number;
  /** Send JSON instead of protobuf binary (the default), e.g. to read the traffic. */
  useJson?: boolean;
  /** Your own interceptors; they run on every attempt, inside the SDK's. */
  interceptors?: Interceptor[];
}

/** What a transport factory is given. */
export interface TransportParams {
  baseUrl: string;
  interceptors: Interceptor[];
  useBinaryFormat: boolean;
  defaultTimeoutMs: number | undefined;
}

/** Request fields of a list call, without the page token the iterator sets. */
export type ListRequest<S extends DescMessage> = Omit<MessageInitShape<S>, "pageToken" | "$typeName">;

/** The customers domain's client, plus an iterator over every customer. */
export type CustomersClient = Client<typeof CustomerService> & {
  /** Every customer (optionally in one state), page after page. */
  listAll(req?: ListRequest<typeof ListCustomersRequestSchema>, options?: CallOptions): AsyncGenerator<Customer, void, undefined>;
};

/** The ledger's client, plus iterators over accounts, transfers and entries. */
export type LedgerClient = Client<typeof LedgerService> & {
  /** Every ledger account (optionally one customer's), page after page. */
  listAllAccounts(req?: ListRequest<typeof ListLedgerAccountsRequestSchema>, options?: CallOptions): AsyncGenerator<LedgerAccount, void, undefined>;
  /** Every transfer (optionally those touching one account), page after page. */
  listAllTransfers(req?: ListRequest<typeof ListTransfersRequestSchema>, options?: CallOptions): AsyncGenerator<Transfer, void, undefined>;
  /** Every entry of an account, oldest first, page after page. */
  listAllEntries(req: ListRequest<typeof ListAccountEntriesRequestSchema>, options?: CallOptions): AsyncGenerator<Entry, void, undefined>;
};

/** The access domain's client, plus iterators over principals and API keys. */
export type AccessClient = Client<typeof AccessService> & {
  listAllPrincipals(req?: ListRequest<typeof ListPrincipalsRequestSchema>, options?: CallOptions): AsyncGenerator<Principal, void, undefined>;
  listAllApiKeys(req: ListRequest<typeof ListApiKeysRequestSchema>, options?: CallOptions): AsyncGenerator<ApiKey, void, undefined>;
};

/** The audit chain's client, plus an iterator over its records. */
export type AuditClient = Client<typeof AuditService> & {
  listAll(req?: ListRequest<typeof ListAuditRecordsRequestSchema>, options?: CallOptions): AsyncGenerator<AuditRecord, void, undefined>;
};

/** The resources domain's client, plus an iterator over what a customer owns. */
export type ResourcesClient = Client<typeof ResourceService> & {
  /** Everything a customer owns, across every domain (the customer, then their ledger accounts, by id), page after page. */
  listAll(req: ListRequest<typeof ListCustomerResourcesRequestSchema>, options?: CallOptions): AsyncGenerator<Resource, void, undefined>;
};

/** One client per domain, sharing a transport. */
export interface Plinth {
  customers: CustomersClient;
  ledger: LedgerClient;
  access: AccessClient;
  audit: AuditClient;
  resources: ResourcesClient;
  /** The transport, SDK interceptors included, for other generated clients. */
  transport: Transport;
}

/**
 * The SDK's interceptors for options, outermost first: idempotency keys
 * (set once per call), retries, authentication, then the caller's own.
 */
export function plinthInterceptors(options: PlinthOptions): Interceptor[] {
  const out: Interceptor[] = [];
  if (options.idempotencyKeys !== false) {
    out.push(idempotencyInterceptor());
  }
  if (options.retry !== false) {
    out.push(retryInterceptor(options.retry ?? {}));
  }
  out.push(authInterceptor(options.apiKey));
  out.push(...(options.interceptors ?? []));
  return out;
}

/**
 * Builds the clients over a transport made by makeTransport: what
 * createPlinth does with Node's transport (@plinth/sdk) or fetch's
 * (@plinth/sdk/web).
 */
export function createPlinthWith(makeTransport: (params: TransportParams) => Transport, options: PlinthOptions): Plinth {
  if (!options.baseUrl) {
    throw new Error("plinth: baseUrl is required, e.g. http://127.0.0.1:8080");
  }
  const transport = makeTransport({
    baseUrl: options.baseUrl,
    interceptors: plinthInterceptors(options),
    useBinaryFormat: options.useJson !== true,
    defaultTimeoutMs: options.timeoutMs,
  });
  return createPlinthClients(transport);
}

/** The per-domain clients over a transport you made (with the SDK's interceptors, see plinthInterceptors). */
export function createPlinthClients(transport: Transport): Plinth {
  const customers = createClient(CustomerService, transport);
  const ledger = createClient(LedgerService, transport);
  const access = createClient(AccessService, transport);
  const audit = createClient(AuditService, transport);
  const resources = createClient(ResourceService, transport);
  return {
    transport,
    customers: Object.assign(customers, {
      listAll: (req = {}, options?: CallOptions) =>
        paginate((pageToken) => customers.listCustomers({ ...req, pageToken }, options), (p) => p.customers),
    }),
    ledger: Object.assign(ledger, {
      listAllAccounts: (req = {}, options?: CallOptions) =>
        paginate((pageToken) => ledger.listLedgerAccounts({ ...req, pageToken }, options), (p) => p.accounts),
      listAllTransfers: (req = {}, options?: CallOptions) =>
        paginate((pageToken) => ledger.listTransfers({ ...req, pageToken }, options), (p) => p.transfers),
      listAllEntries: (req: ListRequest<typeof ListAccountEntriesRequestSchema>, options?: CallOptions) =>
        paginate((pageToken) => ledger.listAccountEntries({ ...req, pageToken }, options), (p) => p.entries),
    }),
    access: Object.assign(access, {
      listAllPrincipals: (req = {}, options?: CallOptions) =>
        paginate((pageToken) => access.listPrincipals({ ...req, pageToken }, options), (p) => p.principals),
      listAllApiKeys: (req: ListRequest<typeof ListApiKeysRequestSchema>, options?: CallOptions) =>
        paginate((pageToken) => access.listApiKeys({ ...req, pageToken }, options), (p) => p.apiKeys),
    }),
    audit: Object.assign(audit, {
      listAll: (req = {}, options?: CallOptions) =>
        paginate((pageToken) => audit.listAuditRecords({ ...req, pageToken }, options), (p) => p.auditRecords),
    }),
    resources: Object.assign(resources, {
      listAll: (req: ListRequest<typeof ListCustomerResourcesRequestSchema>, options?: CallOptions) =>
        paginate((pageToken) => resources.listCustomerResources({ ...req, pageToken }, options), (p) => p.resources),
    }),
  };
}
