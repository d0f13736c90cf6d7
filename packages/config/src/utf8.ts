import { ConfigError } from './errors.js';

/** The first byte sequence that is not UTF-8, in Python's words (`UnicodeDecodeError`). */
export interface Utf8Problem {
  /** 0-based byte offset of the sequence's first byte, as Python's "in position N". */
  readonly offset: number;
  /** The byte at `offset`. */
  readonly byte: number;
  readonly reason: 'invalid start byte' | 'invalid continuation byte' | 'unexpected end of data';
}

/**
 * Finds the first ill-formed sequence by the rules `TextDecoder` (WHATWG) and Python's utf-8 codec share:
 * no overlong forms, no surrogates, nothing above U+10FFFF. Returns undefined for valid UTF-8.
 */
export function findInvalidUtf8(bytes: Uint8Array): Utf8Problem | undefined {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] ?? 0;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    // The allowed range of the first continuation byte; later ones are always 0x80..0xbf.
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b === 0xe0) {
      need = 2;
      lo = 0xa0;
    } else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) need = 2;
    else if (b === 0xed) {
      need = 2;
      hi = 0x9f;
    } else if (b === 0xf0) {
      need = 3;
      lo = 0x90;
    } else if (b >= 0xf1 && b <= 0xf3) need = 3;
    else if (b === 0xf4) {
      need = 3;
      hi = 0x8f;
    } else return { offset: i, byte: b, reason: 'invalid start byte' };
    for (let k = 1; k <= need; k++) {
      if (i + k >= bytes.length) return { offset: i, byte: b, reason: 'unexpected end of data' };
      const c = bytes[i + k] ?? 0;
      if (c < lo || c > hi) return { offset: i, byte: b, reason: 'invalid continuation byte' };
      lo = 0x80;
      hi = 0xbf;
    }
    i += need + 1;
  }
  return undefined;
}

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0')}`;

/**
 * Decodes a config file's bytes as UTF-8, as PaddleSeg reads configs; a leading BOM is dropped. Anything
 * that is not UTF-8 is a ConfigError naming the file, the line and the byte offset of the first bad byte,
 * instead of replacement characters that would silently change paths and strings.
 */
export function decodeConfigBytes(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // located below
  }
  const problem = findInvalidUtf8(bytes);
  if (!problem) {
    throw new ConfigError({ origin: { file }, keyPath: '', problem: 'the file is not valid UTF-8' });
  }
  let line = 1;
  for (let i = 0; i < problem.offset; i++) if (bytes[i] === 0x0a) line++;
  const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff);
  throw new ConfigError({
    origin: { file, line },
    keyPath: '',
    problem: `not valid UTF-8: byte ${hex(problem.byte)} at byte offset ${problem.offset} (${problem.reason})`,
    hint: utf16
      ? 'The file looks UTF-16 encoded; save it as UTF-8'
      : 'Save the file as UTF-8, the encoding PaddleSeg reads configs in',
  });
}
