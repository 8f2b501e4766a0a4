/**
 * Bundle-time stand-in for the four AWS packages `@infisical/sdk` imports at its top level for AWS IAM
 * auth only (`auth().awsIamAuth`). The sidecar logs in with Universal Auth and never reaches them, so
 * the Dockerfile's esbuild step aliases them here: ~0.9 MB less code to load at every start. Should
 * anything call them, it fails loudly. No source file imports this; `tsc` builds it harmlessly.
 */
const unsupported = (): never => {
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
