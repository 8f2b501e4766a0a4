export declare const NAMES: readonly string[];
export declare function bodyLength(gen: number, name: string): number;
export declare function fileContent(gen: number, name: string): Buffer;
export declare function makeSet(gen: number, names?: readonly string[]): { path: string; content: Buffer }[];
export declare function parseFile(buffer: Buffer, name: string): number | undefined;
