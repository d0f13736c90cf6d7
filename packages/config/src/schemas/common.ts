import { z } from 'zod';

export const positiveInt = z.int().min(1);
export const nonNegativeInt = z.int().min(0);
export const probability = z.number().min(0).max(1);
/** `[w, h]`, width first, as PaddleSeg writes sizes. */
export const sizePair = z.tuple([positiveInt, positiveInt]);
export const sizeOrPair = z.union([positiveInt, sizePair]);
export const ignoreIndex = z.int();
export const pretrained = z.string().nullable().default(null);

/** Builds `{type: name, ...fields}` with unknown keys rejected, the shape every PaddleSeg component has. */
export function component<const N extends string, S extends z.ZodRawShape>(name: N, shape: S) {
  return z.strictObject({ type: z.literal(name), ...shape });
}

/** A discriminated union on `type` over a record of components; zod reports the known names on a miss. */
export function unionOf<T extends Record<string, z.ZodObject>>(schemas: T) {
  const options = Object.values(schemas) as [T[keyof T], ...T[keyof T][]];
  return z.discriminatedUnion('type', options);
}
