import type { z } from 'zod';
import { slotOfOptions, slotsKnowing } from './component-types.js';
import { ConfigError, describeValue } from './errors.js';
import { type ConfigNode, formatPath, originAt, type PathSegment, type PlainValue } from './node.js';

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let current: unknown = data;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

const JS_NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

function numberHint(found: unknown): string | undefined {
  if (typeof found === 'string' && JS_NUMBER.test(found.trim())) {
    return `YAML 1.1, as PaddleSeg reads configs, takes '${found}' as a string: write a float with a dot and a signed exponent, e.g. 1.0e-5`;
  }
  return undefined;
}

type Issue = z.core.$ZodIssue;

const EXPECTED_TYPE: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean (True or False)',
  array: 'a list',
  tuple: 'a list',
  object: 'a mapping',
};

/** Turns the first zod issue into a ConfigError naming the file, line and key path. */
export function issueToError(
  issue: Issue,
  prefix: readonly PathSegment[],
  data: unknown,
  root: ConfigNode,
): ConfigError {
  const localPath = issue.path.filter(
    (p): p is PathSegment => typeof p === 'string' || typeof p === 'number',
  );
  const path = [...prefix, ...localPath];
  const found = valueAt(data, localPath);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const key = issue.keys[0] ?? '';
      const typeName = valueAt(data, [...localPath, 'type']);
      const known = Object.keys((valueAt(data, localPath) as Record<string, unknown>) ?? {}).length;
      return new ConfigError({
        origin: originAt(root, [...path, key]),
        keyPath: formatPath([...path, key]),
        problem: `unknown key '${key}'${typeof typeName === 'string' ? ` for ${typeName}` : ''}`,
        hint: known
          ? "Check the spelling against the component's parameters (see `segtrain config show --raw`)"
          : undefined,
      });
    }
    case 'invalid_union': {
      if ('discriminator' in issue && issue.discriminator !== undefined) {
        const options = (issue as { options?: unknown[] }).options ?? [];
        const slot = slotOfOptions(options);
        const componentPath = path.at(-1) === 'type' ? path.slice(0, -1) : path;
        const typeValue = valueAt(data, localPath.at(-1) === 'type' ? localPath : [...localPath, 'type']);
        const elsewhere = typeof typeValue === 'string' ? slotsKnowing(typeValue, slot) : [];
        if (typeValue === undefined) {
          return new ConfigError({
            origin: originAt(root, componentPath),
            keyPath: formatPath(componentPath),
            problem: `this ${slot} has no 'type'`,
            expected: `'type' naming one of: ${options.join(', ')}`,
            found: describeValue(
              valueAt(data, localPath.at(-1) === 'type' ? localPath.slice(0, -1) : localPath),
            ),
          });
        }
        return new ConfigError({
          origin: originAt(root, [...componentPath, 'type']),
          keyPath: formatPath([...componentPath, 'type']),
          problem: `unknown ${slot} type ${JSON.stringify(typeValue)}`,
          expected: `one of: ${options.join(', ')}`,
          hint: elsewhere.length
            ? `${String(typeValue)} is a ${elsewhere.join('/')} type, not a ${slot} type`
            : undefined,
        });
      }
      return new ConfigError({
        origin: originAt(root, path),
        keyPath: formatPath(path),
        expected: issue.message,
        found: describeValue(found),
      });
    }
    case 'invalid_type':
      return new ConfigError({
        origin: originAt(root, path),
        keyPath: formatPath(path),
        expected: EXPECTED_TYPE[issue.expected] ?? `a ${issue.expected}`,
        found: describeValue(found),
        hint: numberHint(found),
      });
    case 'too_small':
    case 'too_big': {
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const inclusive = issue.inclusive !== false;
      const sizeOf = issue.origin === 'array' ? 'a list with ' : '';
      const op = issue.code === 'too_small' ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<';
      const unit = issue.origin === 'array' ? ' items' : issue.origin === 'string' ? ' characters' : '';
      return new ConfigError({
        origin: originAt(root, path),
        keyPath: formatPath(path),
        expected:
          issue.origin === 'array' || issue.origin === 'string'
            ? `${sizeOf}${op} ${String(bound)}${unit}`
            : `a value ${op} ${String(bound)}`,
        found: describeValue(found),
      });
    }
    case 'invalid_value':
      return new ConfigError({
        origin: originAt(root, path),
        keyPath: formatPath(path),
        expected: `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`,
        found: describeValue(found),
      });
    default:
      return new ConfigError({
        origin: originAt(root, path),
        keyPath: formatPath(path),
        problem: issue.message,
        found: undefined,
      });
  }
}

/** Parses `data` (found at `prefix` of the config) with a schema, or throws a ConfigError for its first issue. */
export function parseBlock<S extends z.ZodType>(
  schema: S,
  data: PlainValue | undefined,
  prefix: readonly PathSegment[],
  root: ConfigNode,
): z.output<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue)
    throw new ConfigError({
      origin: originAt(root, prefix),
      keyPath: formatPath(prefix),
      problem: 'invalid value',
    });
  throw issueToError(issue, prefix, data, root);
}
