// Exits 0 when the PostgreSQL server the PG* variables name (default 127.0.0.1:5432, user postgres)
// accepts a connection to its `postgres` database within 3 s; otherwise prints why and exits 1.
import pg from 'pg';

const host = process.env.PGHOST ?? '127.0.0.1';
const port = Number(process.env.PGPORT ?? 5432);
const user = process.env.PGUSER ?? 'postgres';
const client = new pg.Client({ host, port, user, database: 'postgres', connectionTimeoutMillis: 3000 });
try {
  await client.connect();
  await client.query('SELECT 1');
  await client.end();
} catch (err) {
  console.error(`PostgreSQL at ${host}:${port} (user ${user}) does not answer: ${err.message}`);
  process.exit(1);
}
