/**
 * A rough estimate of how many heap bytes a value holds, for per-agent introspection. It walks
 * at most `maxNodes` objects (shared objects counted once) and uses V8's typical sizes on 64-bit
 * builds; it is for spotting an agent whose state grows, not for accounting.
 */
export function estimateSize(value: unknown, maxNodes = 10_000): number {
  const seen = new Set<object>();
  const stack: unknown[] = [value];
  let bytes = 0;
  while (stack.length > 0) {
    const v = stack.pop();
    switch (typeof v) {
      case 'string':
        bytes += 16 + v.length * 2;
        continue;
      case 'object':
        break;
      case 'function':
        bytes += 64;
        continue;
      default:
        bytes += 8;
        continue;
    }
    if (v === null) continue;
    if (seen.has(v as object)) continue;
    if (seen.size >= maxNodes) break;
    seen.add(v as object);
    if (ArrayBuffer.isView(v)) {
      bytes += 64 + v.byteLength;
    } else if (v instanceof ArrayBuffer) {
      bytes += 32 + v.byteLength;
    } else if (Array.isArray(v)) {
      bytes += 32 + 8 * v.length;
      for (const item of v) stack.push(item);
    } else if (v instanceof Map) {
      bytes += 64 + 24 * v.size;
      for (const [k, item] of v) stack.push(k, item);
    } else if (v instanceof Set) {
      bytes += 64 + 16 * v.size;
      for (const item of v) stack.push(item);
    } else {
      const keys = Object.keys(v as object);
      bytes += 24 + 8 * keys.length;
      for (const k of keys) stack.push((v as Record<string, unknown>)[k]);
    }
  }
  return bytes;
}
