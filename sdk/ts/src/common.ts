// What @plinth/sdk and @plinth/sdk/web share: everything but createPlinth.
export {
  createPlinthClients,
  createPlinthWith,
  plinthInterceptors,
  type AccessClient,
  type AuditClient,
  type CustomersClient,
  type LedgerClient,
  type ListRequest,
  type Plinth,
  type PlinthOptions,
  type ResourcesClient,
  type TransportParams,
} from "./client.js";
export {
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENT_REPLAYED_HEADER,
  authInterceptor,
  backoffDelayMs,
  idempotencyInterceptor,
  isRetryableCode,
  newIdempotencyKey,
  retryInterceptor,
  withIdempotencyKey,
  type ApiKeySource,
  type RetryInfo,
  type RetryOptions,
} from "./interceptors.js";
export { capabilityOf, mutates } from "./capability.js";
export { RetryInfoSchema, retryDelayMs } from "./retryhint.js";
export {
  ERROR_DOMAIN,
  ErrorReason,
  errorInfo,
  errorInfos,
  errorReason,
  fieldPathString,
  fieldViolations,
  insufficientFunds,
  isReplayed,
  type ErrorInfo,
  type FieldViolation,
  type InsufficientFunds,
} from "./errors.js";
export { pages, paginate, toArray, type Page } from "./paginate.js";
export { Code, ConnectError, type CallOptions, type Interceptor, type Transport } from "@connectrpc/connect";

// The generated contracts: messages, enums and services of every domain.
export * as accessv1 from "./gen/plinth/access/v1/access_pb.js";
export * as auditv1 from "./gen/plinth/audit/v1/audit_pb.js";
export * as customersv1 from "./gen/plinth/customers/v1/customers_pb.js";
export * as ledgerv1 from "./gen/plinth/ledger/v1/ledger_pb.js";
export * as optionsv1 from "./gen/plinth/options/v1/options_pb.js";
export * as resourcesv1 from "./gen/plinth/resources/v1/resources_pb.js";
