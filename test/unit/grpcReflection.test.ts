// The descriptors server reflection publishes (api/grpcReflection.ts): the .proto's own field
// names, and map entry types named as protoc names them, at any depth, still usable by a client.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import { mapEntryName, reflectionDefinition } from '../../api/grpcReflection.js';

type Obj = Record<string, unknown>;
interface Message {
  name: string;
  field?: { name: string; typeName?: string }[];
  nestedType?: Message[];
  options?: { mapEntry?: boolean };
}

const descriptorProto = protoLoader.loadSync('google/protobuf/descriptor.proto');
const FileDescriptorProto = descriptorProto[
  'google.protobuf.FileDescriptorProto'
] as protoLoader.MessageTypeDefinition<Obj, Obj>;
const FileDescriptorSet = descriptorProto[
  'google.protobuf.FileDescriptorSet'
] as protoLoader.MessageTypeDefinition<Obj, Obj>;

const dir = mkdtempSync(join(tmpdir(), 'fleetmesh-grpc-reflection-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const PROTO = `syntax = "proto3";
package t.v1;
message Outer {
  message Inner {
    map<string, int32> per_key_count = 1;
  }
  map<uint32, Inner> by_id = 1;
  string plain_name = 2;
}
`;

function published(): { def: protoLoader.PackageDefinition; file: { messageType: Message[] } } {
  const path = join(dir, 'outer.proto');
  writeFileSync(path, PROTO);
  const def = reflectionDefinition([path]);
  const bytes = (def['t.v1.Outer'] as protoLoader.MessageTypeDefinition<Obj, Obj>)
    .fileDescriptorProtos[0]!;
  return { def, file: FileDescriptorProto.deserialize(bytes) as { messageType: Message[] } };
}

describe('gRPC reflection descriptors', () => {
  it('mapEntryName follows protoc', () => {
    assert.equal(mapEntryName('statuses'), 'StatusesEntry');
    assert.equal(mapEntryName('per_key_count'), 'PerKeyCountEntry');
    assert.equal(mapEntryName('by_id'), 'ByIdEntry');
    assert.equal(mapEntryName('a1_b'), 'A1BEntry');
  });

  it('keeps snake_case field names and names map entries as protoc does, nested too', () => {
    const outer = published().file.messageType[0]!;
    assert.deepEqual(
      outer.field?.map((f) => [f.name, f.typeName ?? '']),
      [
        ['by_id', 'ByIdEntry'],
        ['plain_name', ''],
      ],
    );
    const nested = new Map(outer.nestedType?.map((n) => [n.name, n]));
    assert.equal(nested.get('ByIdEntry')?.options?.mapEntry, true);
    const inner = nested.get('Inner')!;
    assert.deepEqual(
      inner.field?.map((f) => [f.name, f.typeName]),
      [['per_key_count', 'PerKeyCountEntry']],
    );
    assert.deepEqual(
      inner.nestedType?.map((n) => [n.name, n.options?.mapEntry]),
      [['PerKeyCountEntry', true]],
    );
  });

  it('a client loading the published file resolves the renamed entries and round-trips the maps', () => {
    const { def } = published();
    const bytes = (def['t.v1.Outer'] as protoLoader.MessageTypeDefinition<Obj, Obj>)
      .fileDescriptorProtos[0]!;
    const client = protoLoader.loadFileDescriptorSetFromBuffer(
      FileDescriptorSet.serialize({ file: [FileDescriptorProto.deserialize(bytes)] }),
      { defaults: true },
    );
    const Outer = client['t.v1.Outer'] as protoLoader.MessageTypeDefinition<Obj, Obj>;
    // protobufjs 7.6 reads a descriptor's map fields as repeated entries (same wire format);
    // resolving them needs every renamed entry type where its field points.
    const value = {
      by_id: [
        {
          key: 7,
          value: {
            per_key_count: [
              { key: 'a', value: 1 },
              { key: 'b', value: 2 },
            ],
          },
        },
      ],
      plain_name: 'x',
    };
    assert.deepEqual(Outer.deserialize(Outer.serialize(value)), value);
  });

  it('marks proto3 optional fields as protoc does (not as a oneof of their own); real oneofs stay', () => {
    const path = join(dir, 'optional.proto');
    writeFileSync(
      path,
      `syntax = "proto3";
package t.v1;
message Point {
  optional double latitude = 1;
  oneof choice {
    string a = 2;
    string b = 3;
  }
  int32 plain = 4;
}
`,
    );
    const def = reflectionDefinition([path]);
    const bytes = (def['t.v1.Point'] as protoLoader.MessageTypeDefinition<Obj, Obj>)
      .fileDescriptorProtos[0]!;
    const file = FileDescriptorProto.deserialize(bytes) as {
      messageType: { field: { name: string; proto3Optional?: boolean }[] }[];
    };
    assert.deepEqual(
      file.messageType[0]!.field.map((f) => [f.name, f.proto3Optional === true]),
      [
        ['latitude', true],
        ['a', false],
        ['b', false],
        ['plain', false],
      ],
    );
  });
});
