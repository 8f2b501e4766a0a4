/**
 * One zod at run time (issue 19), measured, not used: @infisical/sdk depends on zod 3 and builds ~30 schemas of
 * dynamic-secret providers with it when it is imported, but never parses anything with them (they describe its
 * TypeScript types). Aliasing every `zod` import here (`--alias:zod=./build/stubs/zod-one.mjs`, the `zod-one`
 * variant of `npx tsx bench/profile.ts variants`) makes the SDK build them with the sidecar's zod 4 instead of
 * loading a second zod: 59 kB less code, but no start-up gain the bench could tell from noise, so the Dockerfile
 * does not do it. The sidecar's own `import * as z from 'zod'` gets zod 4 unchanged through the `export *`; the
 * SDK's `{ z }` is an object of only what it uses (zod 4's own `z` export would keep all of zod in the bundle).
 */
export * from '../../node_modules/zod/index.js';
import { array, discriminatedUnion, literal, nativeEnum, number, object, string, union } from '../../node_modules/zod/index.js';
export const z = { array, discriminatedUnion, literal, nativeEnum, number, object, string, union };
