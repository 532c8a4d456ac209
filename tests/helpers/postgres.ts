// Throwaway PostgreSQL for tests. `freshDatabase()` returns the URL of a new, empty
// database and a function that drops it. The server is TORCHLET_TEST_PG (a URL whose user
// may create databases) when set; otherwise a private cluster that this module starts
// once per test file with Debian's initdb + pg_ctl, in a temp dir, on a free loopback
// port (as the `postgres` OS user when running as root: initdb refuses root).
// `postgresAvailable` says whether either is possible; pass it to `missing()`.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** The directory of initdb and pg_ctl: Debian keeps them out of PATH, under /usr/lib/postgresql/<version>/bin. */
function pgBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

const external = process.env.TORCHLET_TEST_PG || undefined;
const binDir = pgBinDir();
const asRoot = process.getuid?.() === 0;

export const postgresAvailable = external !== undefined || (binDir !== undefined && (!asRoot || spawnSync('id', ['postgres']).status === 0));
export const POSTGRES_PACKAGE = "PostgreSQL (Debian package 'postgresql', or TORCHLET_TEST_PG=postgres://...)";

export interface TestCluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** Restarts the server (fast shutdown: open connections are cut). */
  restart(): void;
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Runs a PostgreSQL tool, as the postgres user when we are root. */
function pgTool(tool: string, args: string[]): void {
  const cmd = join(binDir!, tool);
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  execFileSync(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}

let cluster: Promise<TestCluster> | undefined;

/** Starts (once per test file) a private cluster; `stop()` it in afterAll. */
export function startCluster(): Promise<TestCluster> {
  cluster ??= (async () => {
    if (binDir === undefined) throw new Error(`${POSTGRES_PACKAGE} is not installed`);
    const dir = mkdtempSync(join(tmpdir(), 'torchlet-pg-'));
    chmodSync(dir, 0o777);
    const data = join(dir, 'data');
    if (asRoot) execFileSync('chown', ['postgres', dir]);
    const port = await freePort();
    pgTool('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
    const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`;
    const start = (): void => pgTool('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
    start();
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      try {
        pgTool('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
    process.once('exit', () => {
      try {
        stop();
      } catch {
        // best effort at exit
      }
    });
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      port,
      restart: () => {
        pgTool('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
        start();
      },
      stop,
    };
  })();
  return cluster;
}

let counter = 0;

/** A new empty database on the test server, and a teardown that drops it. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const server = external ?? (await startCluster()).url;
  const name = `torchlet_test_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** Runs `fn` on a fresh database, dropped afterwards whatever `fn` does. */
export async function withFreshDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const db = await freshDatabase();
  try {
    return await fn(db.url);
  } finally {
    await db.drop();
  }
}
