import { createFileRegistry, create, type DescMessage } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  file_google_protobuf_duration,
} from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";

// google.rpc.RetryInfo's descriptor, built here as errors.ts builds
// ErrorInfo's (google/rpc/error_details.proto is not one of our contracts):
// google.protobuf.Duration retry_delay = 1.
export const RetryInfoSchema: DescMessage = (() => {
  const registry = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "google/rpc/error_details.proto",
      package: "google.rpc",
      syntax: "proto3",
      dependency: ["google/protobuf/duration.proto"],
      messageType: [
        {
          name: "RetryInfo",
          field: [
            {
              name: "retry_delay",
              number: 1,
              type: FieldDescriptorProto_Type.MESSAGE,
              label: FieldDescriptorProto_Label.OPTIONAL,
              typeName: ".google.protobuf.Duration",
              jsonName: "retryDelay",
            },
          ],
        },
      ],
    }),
    (name) => (name === "google/protobuf/duration.proto" ? file_google_protobuf_duration : undefined),
  );
  const desc = registry.getMessage("google.rpc.RetryInfo");
  if (desc === undefined) {
    throw new Error("plinth: google.rpc.RetryInfo descriptor");
  }
  return desc;
})();

/**
 * How long the gateway asked the caller to wait before trying again, in ms:
 * from a google.rpc.RetryInfo detail (what the gateway sends with a rate
 * limit or when it sheds load), else from a Retry-After header in seconds;
 * undefined when the error says nothing.
 */
export function retryDelayMs(err: unknown): number | undefined {
  if (!(err instanceof ConnectError)) {
    return undefined;
  }
  for (const d of err.findDetails(RetryInfoSchema)) {
    const delay = (d as unknown as { retryDelay?: { seconds: bigint; nanos: number } }).retryDelay;
    if (delay !== undefined) {
      return Number(delay.seconds) * 1000 + Math.ceil(delay.nanos / 1e6);
    }
  }
  const header = err.metadata.get("Retry-After");
  if (header !== null && /^\d+$/.test(header.trim())) {
    return Number(header.trim()) * 1000;
  }
  return undefined;
}
