import type { AddressInfo, Server } from 'node:net';
import type { Readable } from 'node:stream';

/** Listens on a loopback port (a free one unless given) and returns the port. */
export async function listenOnLoopback(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolveListen());
  });
  return (server.address() as AddressInfo).port;
}

/** A body read to its end, or undefined once past `limit` bytes (what is past it is read and dropped). */
export function readBody(stream: Readable, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    stream.on('end', () => resolveBody(size > limit ? undefined : Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}
