import type { PlainMap, PlainValue } from './node.js';

class LiteralSyntaxError extends Error {}

/**
 * A parser for the subset of Python literals `ast.literal_eval` accepts that a config can hold: numbers,
 * strings, True/False/None, lists, tuples (bracketed or bare, as `1,2`; both as lists), sets (as lists) and
 * dicts. Returns undefined where Python would raise, so the caller keeps the text as a string, as
 * PaddleSeg's `--opts` does.
 */
export function parsePythonLiteral(text: string): PlainValue | undefined {
  const parser = new LiteralParser(text);
  try {
    const value = parser.parseTop();
    return value;
  } catch (error) {
    if (error instanceof LiteralSyntaxError) return undefined;
    throw error;
  }
}

const NUMBER =
  /^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:(?:[0-9](?:_?[0-9])*)?\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*\.?)(?:[eE][-+]?[0-9](?:_?[0-9])*)?)/;

class LiteralParser {
  private pos = 0;
  constructor(private readonly text: string) {}

  parseTop(): PlainValue {
    this.skipSpace();
    const value = this.parseValue();
    const end = this.pos;
    this.skipSpace();
    if (this.peek() === ',') return this.parseBareTuple(value, end);
    if (this.pos !== this.text.length) throw new LiteralSyntaxError();
    return value;
  }

  /**
   * A top-level tuple without parentheses, as Python reads `0.75,1.0,1.25` (a trailing comma allowed, so
   * `1,` is a 1-tuple). Like a parenthesised tuple it becomes a list. Outside brackets Python does not
   * join lines, so a line break between the items is a syntax error (a trailing one is fine).
   */
  private parseBareTuple(first: PlainValue, firstEnd: number): PlainValue[] {
    const items = [first];
    let gapStart = firstEnd;
    for (;;) {
      // At a ',' here, after the item that ended at gapStart.
      if (/[\r\n]/.test(this.text.slice(gapStart, this.pos))) throw new LiteralSyntaxError();
      this.pos++;
      gapStart = this.pos;
      this.skipSpace();
      if (this.pos === this.text.length) return items;
      if (/[\r\n]/.test(this.text.slice(gapStart, this.pos))) throw new LiteralSyntaxError();
      items.push(this.parseValue());
      gapStart = this.pos;
      this.skipSpace();
      if (this.pos === this.text.length) return items;
      if (this.peek() !== ',') throw new LiteralSyntaxError();
    }
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] ?? '')) this.pos++;
  }

  private peek(): string {
    return this.text[this.pos] ?? '';
  }

  private parseValue(): PlainValue {
    this.skipSpace();
    const ch = this.peek();
    if (ch === '[') return this.parseSequence('[', ']');
    if (ch === '(') return this.parseSequence('(', ')');
    if (ch === '{') return this.parseBraces();
    if (ch === '"' || ch === "'") return this.parseStrings();
    if (ch === '-' || ch === '+') {
      this.pos++;
      this.skipSpace();
      const value = this.parseNumber();
      return ch === '-' ? -value : value;
    }
    if (/[0-9.]/.test(ch)) return this.parseNumber();
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.pos))?.[0];
    if (word === 'True' || word === 'False' || word === 'None') {
      this.pos += word.length;
      return word === 'True' ? true : word === 'False' ? false : null;
    }
    throw new LiteralSyntaxError();
  }

  private parseNumber(): number {
    const match = NUMBER.exec(this.text.slice(this.pos));
    if (!match || match[0] === '.') throw new LiteralSyntaxError();
    const raw = match[0];
    this.pos += raw.length;
    if (/^[0-9A-Za-z_]/.test(this.peek())) throw new LiteralSyntaxError();
    const clean = raw.replaceAll('_', '');
    const lower = clean.toLowerCase();
    if (lower.startsWith('0x')) return Number.parseInt(clean.slice(2), 16);
    if (lower.startsWith('0o')) return Number.parseInt(clean.slice(2), 8);
    if (lower.startsWith('0b')) return Number.parseInt(clean.slice(2), 2);
    // Python 3 rejects a leading zero on a non-zero decimal integer (`010`).
    if (/^0[0-9]+$/.test(clean) && /[1-9]/.test(clean)) throw new LiteralSyntaxError();
    return Number(clean);
  }

  private parseStrings(): string {
    // Adjacent string literals concatenate, as in Python.
    let out = this.parseString();
    for (;;) {
      const save = this.pos;
      this.skipSpace();
      const ch = this.peek();
      if (ch !== '"' && ch !== "'") {
        this.pos = save;
        return out;
      }
      out += this.parseString();
    }
  }

  private parseString(): string {
    const quote = this.peek();
    const triple = this.text.startsWith(quote.repeat(3), this.pos);
    const close = triple ? quote.repeat(3) : quote;
    this.pos += close.length;
    let out = '';
    while (this.pos < this.text.length) {
      if (this.text.startsWith(close, this.pos)) {
        this.pos += close.length;
        return out;
      }
      const ch = this.text[this.pos++] ?? '';
      if (ch === '\n' && !triple) throw new LiteralSyntaxError();
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const esc = this.text[this.pos++] ?? '';
      const simple: Record<string, string> = {
        n: '\n',
        t: '\t',
        r: '\r',
        '\\': '\\',
        "'": "'",
        '"': '"',
        '0': '\0',
        a: '\x07',
        b: '\b',
        f: '\f',
        v: '\v',
      };
      if (esc in simple) out += simple[esc];
      else if (esc === 'x' || esc === 'u') {
        const len = esc === 'x' ? 2 : 4;
        const hex = this.text.slice(this.pos, this.pos + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) throw new LiteralSyntaxError();
        out += String.fromCharCode(Number.parseInt(hex, 16));
        this.pos += len;
      } else if (esc === '\n') {
        // line continuation
      } else out += `\\${esc}`;
    }
    throw new LiteralSyntaxError();
  }

  private parseSequence(open: string, close: string): PlainValue {
    this.pos++;
    const items: PlainValue[] = [];
    let sawComma = false;
    for (;;) {
      this.skipSpace();
      if (this.peek() === close) {
        this.pos++;
        // `(x)` is just x in Python, not a tuple; a caller wanting a list gets a one-item list anyway.
        if (open === '(' && items.length === 1 && !sawComma) return items[0] as PlainValue;
        return items;
      }
      if (this.pos >= this.text.length) throw new LiteralSyntaxError();
      items.push(this.parseValue());
      this.skipSpace();
      if (this.peek() === ',') {
        this.pos++;
        sawComma = true;
      } else if (this.peek() !== close) throw new LiteralSyntaxError();
    }
  }

  private parseBraces(): PlainValue {
    this.pos++;
    this.skipSpace();
    if (this.peek() === '}') {
      this.pos++;
      return {};
    }
    const first = this.parseValue();
    this.skipSpace();
    if (this.peek() !== ':') {
      // a set literal
      const items = [first];
      while (this.peek() === ',') {
        this.pos++;
        this.skipSpace();
        if (this.peek() === '}') break;
        items.push(this.parseValue());
        this.skipSpace();
      }
      if (this.peek() !== '}') throw new LiteralSyntaxError();
      this.pos++;
      return items;
    }
    const out: PlainMap = {};
    let key: PlainValue = first;
    for (;;) {
      if (typeof key === 'object' && key !== null) throw new LiteralSyntaxError();
      this.pos++; // ':'
      const value = this.parseValue();
      Object.defineProperty(
        out,
        String(key === null ? 'None' : key === true ? 'True' : key === false ? 'False' : key),
        {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        },
      );
      this.skipSpace();
      if (this.peek() === ',') {
        this.pos++;
        this.skipSpace();
      }
      if (this.peek() === '}') {
        this.pos++;
        return out;
      }
      key = this.parseValue();
      this.skipSpace();
      if (this.peek() !== ':') throw new LiteralSyntaxError();
    }
  }
}
