import { getOption, type DescMethod } from "@bufbuild/protobuf";
import { capability, type Capability } from "./gen/plinth/options/v1/options_pb.js";

const cache = new WeakMap<DescMethod, Capability>();

/**
 * The (plinth.options.v1.capability) option of a method, as its contract
 * declares it: owner, scope, whether it mutates, stability and summary.
 */
export function capabilityOf(method: DescMethod): Capability {
  let c = cache.get(method);
  if (c === undefined) {
    c = getOption(method, capability);
    cache.set(method, c);
  }
  return c;
}

/**
 * Whether a method's contract says it changes state (and so needs an
 * Idempotency-Key header).
 */
export function mutates(method: DescMethod): boolean {
  return capabilityOf(method).mutates;
}
