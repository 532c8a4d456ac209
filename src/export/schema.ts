// The ONNX schema, compiled by protobufjs from the vendored onnx.proto (ONNX 1.12), and
// typed views of the messages torchlet writes. Field names keep the schema's snake_case so
// that they read like ONNX's own documentation.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { packageRoot } from '../package-root.js';

/** TensorProto.DataType values torchlet uses. */
export const DataType = { FLOAT: 1, UINT8: 2, INT64: 7 } as const;

/** AttributeProto.AttributeType values torchlet uses. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  floats?: number[];
  ints?: number[];
}

export interface NodeProto {
  name: string;
  op_type: string;
  domain?: string;
  input: string[];
  output: string[];
  attribute: AttributeProto[];
  doc_string?: string;
}

export interface TensorProto {
  name: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}

export interface Dimension {
  dim_value?: number;
  dim_param?: string;
}

export interface ValueInfoProto {
  name: string;
  type: { tensor_type: { elem_type: number; shape: { dim: Dimension[] } } };
  doc_string?: string;
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  doc_string?: string;
}

export interface ModelProto {
  ir_version: number;
  opset_import: { domain: string; version: number }[];
  producer_name: string;
  producer_version: string;
  doc_string?: string;
  graph: GraphProto;
  metadata_props: { key: string; value: string }[];
}

let modelType: protobuf.Type | undefined;

/** onnx.ModelProto, parsed once from the .proto shipped with the package. */
function modelProto(): protobuf.Type {
  if (modelType) return modelType;
  const root = packageRoot();
  if (root === undefined) throw new Error('torchlet: cannot find the package root, so not the ONNX schema (src/export/onnx.proto)');
  const source = readFileSync(join(root, 'src', 'export', 'onnx.proto'), 'utf8');
  modelType = protobuf.parse(source, { keepCase: true }).root.lookupType('onnx.ModelProto');
  return modelType;
}

/** Serialises a model; the schema's own verifier rejects a malformed message first. */
export function encodeModel(model: ModelProto): Uint8Array {
  const type = modelProto();
  const problem = type.verify(model);
  if (problem !== null) throw new Error(`torchlet: internal error, the ONNX message is malformed: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}

/** Parses an ONNX file's bytes into plain objects (int64 fields as numbers, bytes as Uint8Array). */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const type = modelProto();
  let message: protobuf.Message;
  try {
    message = type.decode(bytes);
  } catch (err) {
    throw new Error(`not an ONNX model: ${err instanceof Error ? err.message : String(err)}`);
  }
  return type.toObject(message, { longs: Number, bytes: Uint8Array, defaults: false, arrays: true }) as ModelProto;
}
