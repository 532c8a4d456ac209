// Builds an ONNX graph node by node: unique value names, typed attributes, float32 and int64
// initializers stored as little-endian raw_data (what the ONNX spec requires).
import { AttributeType, DataType, type AttributeProto, type NodeProto, type TensorProto } from './schema.js';

/** A value flowing through the graph, with its shape after the batch dimension. */
export interface Value {
  name: string;
  shape: number[];
}

export type AttributeValue = number | number[] | string | { float: number } | { floats: number[] };

function attribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`torchlet: internal error, attribute '${name}' must be an integer (wrap floats as { float })`);
    return { name, type: AttributeType.INT, i: value };
  }
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  return { name, type: AttributeType.FLOATS, floats: value.floats };
}

function littleEndian(data: Float32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(data.byteLength);
  const view = new DataView(bytes.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(4 * i, v, true));
  else data.forEach((v, i) => view.setBigInt64(8 * i, v, true));
  return bytes;
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly used = new Set<string>();

  /** A name no other value or node has yet: `base`, or `base_2`, `base_3`, ... */
  unique(base: string): string {
    let name = base;
    for (let n = 2; this.used.has(name); n++) name = `${base}_${n}`;
    this.used.add(name);
    return name;
  }

  /** Adds one node with one output and returns the output's name. */
  node(opType: string, inputs: string[], name: string, attributes: Record<string, AttributeValue> = {}): string {
    const nodeName = this.unique(`${name}/${opType}`);
    const output = `${nodeName}:0`;
    this.nodes.push({
      name: nodeName,
      op_type: opType,
      input: inputs,
      output: [output],
      attribute: Object.entries(attributes).map(([key, v]) => attribute(key, v)),
    });
    return output;
  }

  /** Adds a float32 initializer and returns its name. */
  floats(name: string, dims: number[], data: Float32Array): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`torchlet: internal error, initializer '${name}' has ${data.length} values for shape [${dims.join(', ')}]`);
    const unique = this.unique(name);
    this.initializers.push({ name: unique, dims, data_type: DataType.FLOAT, raw_data: littleEndian(data) });
    return unique;
  }

  /** Adds an int64 initializer (shapes, axes, slice bounds; a scalar with dims []) and returns its name. */
  ints(name: string, values: number[], dims: number[] = [values.length]): string {
    const unique = this.unique(name);
    this.initializers.push({
      name: unique,
      dims,
      data_type: DataType.INT64,
      raw_data: littleEndian(BigInt64Array.from(values, (v) => BigInt(v))),
    });
    return unique;
  }
}
