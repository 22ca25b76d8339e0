import { create, createFileRegistry, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FieldDescriptorProto_Label, FieldDescriptorProto_Type } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ViolationsSchema, type FieldPath } from "./gen/buf/validate/validate_pb.js";
import { IDEMPOTENT_REPLAYED_HEADER } from "./interceptors.js";

/** The ErrorInfo domain of Plinth's errors. */
export const ERROR_DOMAIN = "plinth.dev";

/**
 * The reasons Plinth's errors carry in their google.rpc.ErrorInfo detail
 * (capabilities/<domain>/errors.go).
 */
export const ErrorReason = {
  // customers
  IllegalTransition: "ILLEGAL_TRANSITION",
  EmailTaken: "EMAIL_TAKEN",
  CustomerNotEditable: "CUSTOMER_NOT_EDITABLE",
  // every domain: an Idempotency-Key sent again with another request
  IdempotencyKeyReused: "IDEMPOTENCY_KEY_REUSED",
  // the gateway: a rate limit, and load shed
  RateLimited: "RATE_LIMITED",
  Overloaded: "OVERLOADED",
  // access
  PrincipalNameTaken: "PRINCIPAL_NAME_TAKEN",
  UnknownRole: "UNKNOWN_ROLE",
  ApiKeyNotActive: "API_KEY_NOT_ACTIVE",
  // ledger
  InsufficientFunds: "INSUFFICIENT_FUNDS",
  AccountFrozen: "ACCOUNT_FROZEN",
  AccountClosed: "ACCOUNT_CLOSED",
  AccountState: "ACCOUNT_STATE",
  CurrencyMismatch: "CURRENCY_MISMATCH",
  AlreadyReversed: "ALREADY_REVERSED",
  HoldNotActive: "HOLD_NOT_ACTIVE",
  AccountNotEmpty: "ACCOUNT_NOT_EMPTY",
  // resources
  UnknownResourcePrefix: "UNKNOWN_RESOURCE_PREFIX",
} as const;

/** google.rpc.ErrorInfo, as the gateway sends it with a domain error. */
export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

// google.rpc.ErrorInfo's descriptor, built here (google/rpc/error_details.proto
// is not one of our contracts): reason = 1, domain = 2,
// map<string, string> metadata = 3.
const errorInfoSchema: DescMessage = (() => {
  const { STRING: TYPE_STRING, MESSAGE: TYPE_MESSAGE } = FieldDescriptorProto_Type;
  const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
  const registry = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "google/rpc/error_details.proto",
      package: "google.rpc",
      syntax: "proto3",
      messageType: [
        {
          name: "ErrorInfo",
          field: [
            { name: "reason", number: 1, type: TYPE_STRING, label: OPTIONAL, jsonName: "reason" },
            { name: "domain", number: 2, type: TYPE_STRING, label: OPTIONAL, jsonName: "domain" },
            {
              name: "metadata",
              number: 3,
              type: TYPE_MESSAGE,
              label: REPEATED,
              typeName: ".google.rpc.ErrorInfo.MetadataEntry",
              jsonName: "metadata",
            },
          ],
          nestedType: [
            {
              name: "MetadataEntry",
              options: { mapEntry: true },
              field: [
                { name: "key", number: 1, type: TYPE_STRING, label: OPTIONAL, jsonName: "key" },
                { name: "value", number: 2, type: TYPE_STRING, label: OPTIONAL, jsonName: "value" },
              ],
            },
          ],
        },
      ],
    }),
    () => undefined,
  );
  const desc = registry.getMessage("google.rpc.ErrorInfo");
  if (desc === undefined) {
    throw new Error("plinth: google.rpc.ErrorInfo descriptor");
  }
  return desc;
})();

/** Every google.rpc.ErrorInfo detail of an error (none if it is not a ConnectError). */
export function errorInfos(err: unknown): ErrorInfo[] {
  if (!(err instanceof ConnectError)) {
    return [];
  }
  return err.findDetails(errorInfoSchema).map((d) => {
    const m = d as unknown as ErrorInfo;
    return { reason: m.reason, domain: m.domain, metadata: { ...m.metadata } };
  });
}

/** The ErrorInfo of a Plinth domain error (domain "plinth.dev"), if it has one. */
export function errorInfo(err: unknown): ErrorInfo | undefined {
  return errorInfos(err).find((i) => i.domain === ERROR_DOMAIN);
}

/** The stable reason of a Plinth domain error (see ErrorReason), if it has one. */
export function errorReason(err: unknown): string | undefined {
  return errorInfo(err)?.reason;
}

/** One field of a request that broke the contract's rules. */
export interface FieldViolation {
  /** The field's path, e.g. "email" or "legs[0].amount"; "" for a rule on the whole message. */
  field: string;
  /** The rule's path within the field's rules, e.g. "string.email". */
  rule: string;
  /** The rule's id, e.g. "string.email" or "leg.distinct_accounts". */
  ruleId: string;
  /** What is wrong, for people. */
  message: string;
  /** Whether the violation is about a map key rather than its value. */
  forKey: boolean;
}

/**
 * The fields an InvalidArgument error says are invalid, from its
 * buf.validate.Violations detail: every violated rule of the request. Empty
 * for any other error.
 */
export function fieldViolations(err: unknown): FieldViolation[] {
  if (!(err instanceof ConnectError) || err.code !== Code.InvalidArgument) {
    return [];
  }
  return err.findDetails(ViolationsSchema).flatMap((vs) =>
    vs.violations.map((v) => ({
      field: fieldPathString(v.field),
      rule: fieldPathString(v.rule),
      ruleId: v.ruleId,
      message: v.message,
      forKey: v.forKey,
    })),
  );
}

/** Renders a buf.validate.FieldPath as protovalidate does: a.b[0].c["k"]. */
export function fieldPathString(path: FieldPath | undefined): string {
  if (path === undefined) {
    return "";
  }
  let out = "";
  for (const e of path.elements) {
    if (out !== "") {
      out += ".";
    }
    out += e.fieldName;
    switch (e.subscript.case) {
      case "index":
      case "intKey":
      case "uintKey":
      case "boolKey":
        out += `[${String(e.subscript.value)}]`;
        break;
      case "stringKey":
        out += `[${JSON.stringify(e.subscript.value)}]`;
        break;
    }
  }
  return out;
}

/** What a ledger movement refused for insufficient funds says. */
export interface InsufficientFunds {
  accountId: string;
  currency: string;
  /** The account's available balance before the movement, in minor units. */
  available: bigint;
  /** The lowest the balance may go: 0, or minus the overdraft limit. */
  floor: bigint;
  /** What the movement would take out of the account in all. */
  requested: bigint;
}

/**
 * The details of a ledger refusal for insufficient funds
 * (FailedPrecondition, reason INSUFFICIENT_FUNDS), or undefined for any
 * other error.
 */
export function insufficientFunds(err: unknown): InsufficientFunds | undefined {
  if (!(err instanceof ConnectError) || err.code !== Code.FailedPrecondition) {
    return undefined;
  }
  const info = errorInfo(err);
  if (info?.reason !== ErrorReason.InsufficientFunds) {
    return undefined;
  }
  const m = info.metadata;
  return {
    accountId: m["account_id"] ?? "",
    currency: m["currency"] ?? "",
    available: toBigInt(m["available"]),
    floor: toBigInt(m["floor"]),
    requested: toBigInt(m["requested"]),
  };
}

function toBigInt(s: string | undefined): bigint {
  try {
    return BigInt(s ?? "0");
  } catch {
    return 0n;
  }
}

/**
 * Whether an answer (its response headers, or the error) was replayed by the
 * gateway for an idempotency key it had seen, rather than run anew.
 */
export function isReplayed(from: Headers | ConnectError | unknown): boolean {
  const headers = from instanceof Headers ? from : from instanceof ConnectError ? from.metadata : undefined;
  return headers?.get(IDEMPOTENT_REPLAYED_HEADER) === "true";
}
