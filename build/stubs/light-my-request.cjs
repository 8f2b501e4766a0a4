'use strict';
/**
 * Bundle-time stand-in for light-my-request (issue 19): Fastify requires it only inside `inject()`, which
 * the tests use and the sidecar's production code never calls. Aliased here by the Dockerfile's esbuild
 * step, so its code (and its dependencies) is not in the image; `inject()` on the image fails loudly.
 */
function injectNotIncluded() {
  throw new Error('fastify.inject() (light-my-request) is not included in the infisical-sidecar image');
}
module.exports = injectNotIncluded;
module.exports.default = injectNotIncluded;
module.exports.inject = injectNotIncluded;
