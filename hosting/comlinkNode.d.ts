// Types for comlink's Node adapter (the package ships them as .d.ts beside an .mjs, which
// NodeNext resolution does not pair up).
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  import type { MessagePort, Worker } from 'node:worker_threads';
  export default function nodeEndpoint(nep: MessagePort | Worker): Endpoint;
}
