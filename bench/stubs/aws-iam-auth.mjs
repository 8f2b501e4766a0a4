/**
 * Stand-in for the four AWS packages @infisical/sdk imports at its top level only for AWS IAM
 * auth (`auth().awsIamAuth`), which the sidecar never uses (Universal Auth only). Aliased in by
 * `npx tsx bench/profile.ts variants` to measure what they cost at start-up; calling any of them
 * fails loudly rather than silently.
 */
const unsupported = () => {
  throw new Error('AWS IAM auth is not included in this build of infisical-sidecar');
};
export const fromNodeProviderChain = unsupported;
export class HttpRequest {
  constructor() {
    unsupported();
  }
}
export class SignatureV4 {
  constructor() {
    unsupported();
  }
}
export class Sha256 {
  constructor() {
    unsupported();
  }
}
