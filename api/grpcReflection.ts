// What server reflection publishes: the .proto files as written, so that reflection clients
// (grpcurl, grpcui, Postman) see the contract a protoc user sees. Two things differ from the
// descriptors proto-loader gives the handlers:
// - field names stay snake_case (keepCase): grpcurl's `-d` JSON and its output use the names a
//   descriptor carries (it also takes the JSON names, vehicleId);
// - map entry types are named as protoc names them (`statuses` -> `StatusesEntry`): protobufjs
//   7.6 names them `Statuses`, and Go clients (grpcurl) then refuse the whole file ("invalid map:
//   incorrect implicit map entry name"), as they did grpc.health.v1's HealthListResponse;
// - proto3 `optional` fields are marked proto3_optional, as protoc marks them: protobufjs gives
//   them their synthetic oneof (`_latitude`) but not the mark, so clients saw a oneof.
import * as protoLoader from '@grpc/proto-loader';

type Obj = Record<string, unknown>;

// google.protobuf.FileDescriptorProto as plain objects (camelCase, enums by name, no defaults
// added): decoding and encoding again gives the same bytes.
const FILE = protoLoader.loadSync('google/protobuf/descriptor.proto', {
  longs: String,
  enums: String,
  defaults: false,
})['google.protobuf.FileDescriptorProto'] as protoLoader.MessageTypeDefinition<Obj, Obj>;

/** The parts of google.protobuf.DescriptorProto that map entries and optional fields touch. */
interface MessageDescriptor {
  name?: string;
  field?: { name?: string; typeName?: string; oneofIndex?: number; proto3Optional?: boolean }[];
  oneofDecl?: { name?: string }[];
  nestedType?: MessageDescriptor[];
  options?: { mapEntry?: boolean } | null;
}

/** protoc's name for a map field's entry type (as Go's protodesc checks it). */
export function mapEntryName(field: string): string {
  let out = '';
  let upper = true;
  for (const c of field) {
    if (c === '_') upper = true;
    else {
      out += upper ? c.toUpperCase() : c;
      upper = false;
    }
  }
  return `${out}Entry`;
}

/** Renames the map entry types of a message (and of its nested messages) in place. */
function fixMapEntries(m: MessageDescriptor): void {
  const entries = new Map(
    (m.nestedType ?? []).filter((n) => n.options?.mapEntry === true).map((n) => [n.name, n]),
  );
  for (const f of m.field ?? []) {
    if (!f.typeName || !f.name) continue;
    const dot = f.typeName.lastIndexOf('.');
    const entry = entries.get(f.typeName.slice(dot + 1));
    if (!entry) continue;
    entry.name = mapEntryName(f.name);
    f.typeName = f.typeName.slice(0, dot + 1) + entry.name;
  }
  for (const n of m.nestedType ?? []) fixMapEntries(n);
}

/**
 * Marks proto3 `optional` fields (a field alone in a oneof named `_<field>`, protoc's synthetic
 * oneof) as protoc does, in a message and its nested messages.
 */
function markOptionals(m: MessageDescriptor): void {
  const fields = m.field ?? [];
  for (const f of fields) {
    if (f.oneofIndex === undefined || f.oneofIndex === null) continue;
    const decl = m.oneofDecl?.[f.oneofIndex];
    const alone = fields.filter((g) => g.oneofIndex === f.oneofIndex).length === 1;
    if (alone && decl?.name === `_${f.name}`) f.proto3Optional = true;
  }
  for (const n of m.nestedType ?? []) markOptionals(n);
}

/** One encoded FileDescriptorProto, with protoc's map entry names and optional marks. */
function fixFile(bytes: Buffer): Buffer {
  const file = FILE.deserialize(bytes) as { messageType?: MessageDescriptor[]; syntax?: string };
  for (const m of file.messageType ?? []) {
    fixMapEntries(m);
    if (file.syntax === 'proto3') markOptionals(m);
  }
  return FILE.serialize(file as Obj);
}

function isType(
  d: protoLoader.AnyDefinition,
): d is protoLoader.ProtobufTypeDefinition & protoLoader.AnyDefinition {
  return 'format' in d && Array.isArray(d.fileDescriptorProtos);
}

/** The package definition to give ReflectionService for these .proto files. */
export function reflectionDefinition(protoFiles: string[]): protoLoader.PackageDefinition {
  const def = protoLoader.loadSync(protoFiles, { keepCase: true });
  // Each type and enum carries the bytes of all the files (services are method maps and carry
  // none); the same Buffer recurs, so each file is fixed once.
  const fixed = new Map<Buffer, Buffer>();
  const fix = (b: Buffer): Buffer => {
    let f = fixed.get(b);
    if (!f) fixed.set(b, (f = fixFile(b)));
    return f;
  };
  for (const entry of Object.values(def))
    if (isType(entry)) entry.fileDescriptorProtos = entry.fileDescriptorProtos.map(fix);
  return def;
}
