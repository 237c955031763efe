// A small language for message bodies as data: a body is a struct of named fields in wire
// order, each field a codec (WORD, BCD[6], GBK STRING[20], a counted list, …). The TypeScript
// type of a body is inferred from its table, so the table is the single description of a
// message for decoding, encoding and typing.
import { Reader, Writer, decodeGbk, encodeGbk, trimZeros } from './bytes.js';
import type { Edition } from './header.js';

export interface Context {
  edition: Edition;
}

export interface Codec<T> {
  read(r: Reader, ctx: Context): T;
  write(w: Writer, v: T, ctx: Context): void;
}

export type Infer<C> = C extends Codec<infer T> ? T : never;

export const u8: Codec<number> = { read: (r) => r.u8(), write: (w, v) => void w.u8(v) };
export const u16: Codec<number> = { read: (r) => r.u16(), write: (w, v) => void w.u16(v) };
export const u32: Codec<number> = { read: (r) => r.u32(), write: (w, v) => void w.u32(v) };

/** BCD[n] as a digit string (leading zeros kept). */
export const bcd = (n: number): Codec<string> => ({
  read: (r) => r.bcd(n),
  write: (w, v) => void w.bcd(v, n),
});

/** BYTE[n] kept as bytes. */
export const bytes = (n: number): Codec<Uint8Array> => ({
  read: (r) => r.bytes(n),
  write: (w, v) => void w.fixed(v, n),
});

/** The rest of the body as bytes. */
export const restBytes: Codec<Uint8Array> = {
  read: (r) => r.rest(),
  write: (w, v) => void w.bytes(v),
};

/** STRING in a fixed BYTE[n]: GBK, 0x00 padding stripped on read, added at the end on write. */
export const str = (n: number): Codec<string> => ({
  read: (r) => r.gbk(n),
  write: (w, v) => void w.gbk(v, n),
});

/** STRING filling the rest of the body. */
export const restStr: Codec<string> = {
  read: (r) => decodeGbk(trimZeros(r.rest())),
  write: (w, v) => void w.gbk(v),
};

/** STRING preceded by its length as a BYTE. */
export const str8: Codec<string> = {
  read: (r) => decodeGbk(r.bytes(r.u8())),
  write: (w, v) => {
    const b = encodeGbk(v);
    if (b.length > 255)
      throw new RangeError(`string of ${b.length} bytes does not fit a BYTE length`);
    w.u8(b.length).bytes(b);
  },
};

/** A list preceded by its item count. */
export const list = <T>(count: Codec<number>, item: Codec<T>): Codec<T[]> => ({
  read: (r, ctx) => {
    const n = count.read(r, ctx);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item.read(r, ctx));
    return out;
  },
  write: (w, v, ctx) => {
    count.write(w, v.length, ctx);
    for (const x of v) item.write(w, x, ctx);
  },
});

type Fields = Record<string, Codec<unknown>>;
type OptionalKeys<F extends Fields> = {
  [K in keyof F]: undefined extends Infer<F[K]> ? K : never;
}[keyof F];
type Flatten<T> = { [K in keyof T]: T[K] };
/** The body type of a struct: fields whose codec may yield undefined (optional) are optional keys. */
export type StructOf<F extends Fields> = Flatten<
  { [K in Exclude<keyof F, OptionalKeys<F>>]: Infer<F[K]> } & {
    [K in OptionalKeys<F>]?: Infer<F[K]>;
  }
>;

/** Fields in wire order (object key order). */
export const struct = <F extends Fields>(fields: F): Codec<StructOf<F>> => {
  const entries = Object.entries(fields);
  return {
    read: (r, ctx) => {
      const out: Record<string, unknown> = {};
      for (const [name, codec] of entries) out[name] = codec.read(r, ctx);
      return out as StructOf<F>;
    },
    write: (w, v, ctx) => {
      const rec = v as Record<string, unknown>;
      for (const [name, codec] of entries) codec.write(w, rec[name], ctx);
    },
  };
};

/** One codec per edition; 2011 falls back to 2013 where the two agree. */
export const byEdition = <
  C extends Partial<Record<Edition, Codec<unknown>>> & { 2013: Codec<unknown> },
>(
  map: C,
): Codec<Infer<C[keyof C]>> => {
  const pick = (e: Edition): Codec<unknown> => map[e] ?? map[2013];
  return {
    read: (r, ctx) => pick(ctx.edition).read(r, ctx) as Infer<C[keyof C]>,
    write: (w, v, ctx) => pick(ctx.edition).write(w, v, ctx),
  };
};

export const empty: Codec<Record<string, never>> = {
  read: () => ({}),
  write: () => undefined,
};

/** A field present only when bytes remain (trailing optional fields real devices omit). */
export const optional = <T>(codec: Codec<T>): Codec<T | undefined> => ({
  read: (r, ctx) => (r.remaining > 0 ? codec.read(r, ctx) : undefined),
  write: (w, v, ctx) => {
    if (v !== undefined) codec.write(w, v, ctx);
  },
});

export const custom = <T>(
  read: (r: Reader, ctx: Context) => T,
  write: (w: Writer, v: T, ctx: Context) => void,
): Codec<T> => ({
  read,
  write,
});
