/** A PostgreSQL wire-protocol impostor for the hostile-server tests: behaves badly on purpose. */
import { createServer, type Server, type Socket } from 'node:net';

export type Mode =
  | 'silent' // accept TCP, never answer
  | 'ssl-yes-then-silent' // answer 'S' to SSLRequest, then never do the TLS handshake
  | 'trust-no-close' // trust login, answer queries, ignore Terminate and never close
  | 'trust-hang-query' // trust login, never answer a query
  | 'refuse-then-trust-no-close' // first login refused (28P01), later logins trust + never close
  | 'cleartext-capture' // ask for a cleartext password, record it, then refuse (28P01)
  | 'no-ssl-cleartext-capture'; // 'N' to SSLRequest, then cleartext capture

export interface Hostile {
  port: number;
  connections: number;
  captured: string[];
  close(): Promise<void>;
}

function msg(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const authOk = () => msg('R', int32(0));
const ready = () => msg('Z', Buffer.from('I'));
const cleartextAsk = () => msg('R', int32(3));
function errorResponse(code: string, text: string): Buffer {
  return msg('E', Buffer.concat([Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${text}\0`), Buffer.from([0])]));
}

export async function startHostile(mode: Mode): Promise<Hostile> {
  const sockets = new Set<Socket>();
  const state: Hostile = { port: 0, connections: 0, captured: [], close: async () => undefined };
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    state.connections++;
    const n = state.connections;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    if (mode === 'silent') return;
    let buf = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          if (code === 80877103) {
            // SSLRequest
            if (mode === 'ssl-yes-then-silent') { socket.write('S'); buf = Buffer.alloc(0); socket.removeAllListeners('data'); return; }
            socket.write('N');
            continue;
          }
          started = true;
          if (mode === 'cleartext-capture' || mode === 'no-ssl-cleartext-capture') { socket.write(cleartextAsk()); continue; }
          if (mode === 'refuse-then-trust-no-close' && n === 1) { socket.write(errorResponse('28P01', 'password authentication failed')); socket.end(); return; }
          socket.write(Buffer.concat([authOk(), ready()]));
          continue;
        }
        if (buf.length < 5) return;
        const type = String.fromCharCode(buf[0]!);
        const len = buf.readInt32BE(1);
        if (buf.length < len + 1) return;
        const body = buf.subarray(5, len + 1);
        buf = buf.subarray(len + 1);
        if (type === 'p') {
          state.captured.push(body.subarray(0, body.length - 1).toString('utf8'));
          socket.write(errorResponse('28P01', 'password authentication failed'));
          socket.end();
          return;
        }
        if (type === 'Q') {
          if (mode === 'trust-hang-query') continue;
          socket.write(Buffer.concat([msg('C', Buffer.from('ALTER ROLE\0')), ready()]));
          continue;
        }
        if (type === 'X') continue; // ignore Terminate: never close
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as { port: number }).port;
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return state;
}
