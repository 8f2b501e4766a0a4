/**
 * The two Infisical server generations the fake can answer like, and the differences between them
 * that live in the HTTP layer. The token-lifecycle differences (which TTL the JWT carries, what a
 * past-TTL, revoked or renewed token gets) are in auth.ts. Facts: docs/infisical-api.md §8.
 *
 * - `current`: the server code of 2026 (and Infisical Cloud). The fake's default.
 * - `v2024`: a self-hosted Infisical of late 2024 (upstream commit 593bda8, 2024-10), as measured.
 */
export type ServerGeneration = 'current' | 'v2024';

/** How an expired token fails: '403' TokenError, or '401' UnauthorizedError. */
export type ExpiredTokenForm = '401' | '403';

export const SERVER_GENERATIONS: readonly ServerGeneration[] = ['current', 'v2024'];

/** How a list request for a folder or environment that does not exist is answered. */
export type MissingFolderAnswer = '404' | 'empty';

export interface GenerationTraits {
  /** '404': SecretPathNotFound. 'empty': 200 `{secrets:[],imports:[]}`. */
  readonly missingFolder: MissingFolderAnswer;
  /** The default form of `expireTokens()` (and, on `current`, of a token past its TTL). */
  readonly expiredTokenForm: ExpiredTokenForm;
  /** Status of a zod validation failure (body or query). The late-2024 error handler sent 401. */
  readonly validationStatus: 401 | 422;
  /** The "try again in …" part of a 429 body. `retry-after` holds the real seconds left on both. */
  readonly rateLimitWait: (secondsLeft: number) => string;
  /** Whether a list that did not ask for imports still carries `imports: []`. */
  readonly importsKeyAlways: boolean;
}

export const GENERATION_TRAITS: Readonly<Record<ServerGeneration, GenerationTraits>> = Object.freeze({
  current: {
    missingFolder: '404',
    expiredTokenForm: '403',
    validationStatus: 422,
    rateLimitWait: (secondsLeft: number) => `${secondsLeft} seconds`,
    importsKeyAlways: true,
  },
  v2024: {
    missingFolder: 'empty',
    expiredTokenForm: '401',
    validationStatus: 401,
    // @fastify/rate-limit's `context.after`: the window's length in words, not the time left.
    rateLimitWait: () => '1 minute',
    importsKeyAlways: false,
  },
});
