'use strict';
/**
 * Bundle-time stand-in for @fastify/ajv-compiler and @fastify/fast-json-stringify-compiler (issue 19).
 * Fastify calls the exported factory once per instance (lib/schema-controller.js) and calls the builder it
 * returns only for a route that declares a JSON schema (body, querystring, params, headers or response), or
 * when a handler asks for request.getValidationFunction / reply.getSerializationFunction. The sidecar's
 * routes declare none and reply with plain objects (JSON.stringify), so neither compiler is ever built and
 * ajv (with ajv-formats and fast-uri) and fast-json-stringify's compiler stay out of the image:
 * ~270 kB less code at every start. Should a route gain a schema, building the bundle still works and the
 * route fails loudly at registration (FST_ERR_SCH_*_BUILD) rather than silently not validating.
 * The Dockerfile's esbuild step aliases both packages here; tests and `dist/` use the real ones.
 */
function schemaCompilersNotIncluded() {
  return function buildCompiler() {
    throw new Error('JSON schema compilers (ajv, fast-json-stringify) are not included in the infisical-sidecar image: routes must not declare schemas');
  };
}
module.exports = schemaCompilersNotIncluded;
module.exports.default = schemaCompilersNotIncluded;
