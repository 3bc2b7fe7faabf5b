// A fresh PostgreSQL database per test file, on the server at PGHOST/PGPORT (default 127.0.0.1:5432,
// user postgres), dropped afterwards. Without a reachable server the caller skips, except under CI.
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import pg from 'pg';

const HOST = process.env.PGHOST ?? '127.0.0.1';
const PORT = Number(process.env.PGPORT ?? 5432);
const USER = process.env.PGUSER ?? 'postgres';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

function adminUrl(): string {
  return `postgres://${USER}@${HOST}:${PORT}/postgres`;
}

/**
 * Creates `portcullis_test_<random>`, or returns a one-line reason why PostgreSQL is unavailable.
 * Under CI=true an unavailable server throws: a missing server must fail the run, not skip it.
 */
export async function freshDatabase(): Promise<TestDatabase | string> {
  const name = `portcullis_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl(), connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (err) {
    await admin.end().catch(() => undefined);
    const reason = `PostgreSQL at ${HOST}:${PORT} (user ${USER}) is not available: ${(err as Error).message}`;
    if (process.env.CI === 'true') throw new Error(reason);
    return reason;
  }
  await admin.end();
  return {
    name,
    url: `postgres://${USER}@${HOST}:${PORT}/${name}`,
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl(), connectionTimeoutMillis: 3000 });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * A TCP relay in front of a server, so a test can take the server "down" (refuse and cut every
 * connection) and bring it back without touching the real one.
 */
export class CuttableRelay {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly targetHost: string, private readonly targetPort: number) {}

  async start(port = 0): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      this.sockets.add(client);
      this.sockets.add(upstream);
      const end = (): void => { client.destroy(); upstream.destroy(); this.sockets.delete(client); this.sockets.delete(upstream); };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  /** Closes the listener and cuts every open connection. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async restore(): Promise<void> {
    await this.start(this.port);
  }
}

/** The URL of `db` reached through `relay`. */
export function relayedUrl(db: TestDatabase, relay: CuttableRelay): string {
  return `postgres://${USER}@127.0.0.1:${relay.port}/${db.name}`;
}

export const POSTGRES_TARGET = { host: HOST, port: PORT };
