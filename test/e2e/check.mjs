// Byte-exact checks for the Docker e2e (test/e2e/scenarios), on the host with plain node (no dependencies).
//
//   node check.mjs flat SEED.json                      → {KEY: value} of every folder (later folder wins)
//   node check.mjs env EXPECTED.json ENVIRON VOLDIR [BASE.json SERVICE]
//                                                      → a consumer's app process's environ holds every expected
//                                                        secret byte for byte, the derived DATABASE_URL, and
//                                                        the base file's non-secret settings (BASE.json: the
//                                                        layout's `docker compose config --format json`;
//                                                        default: the seed layout's user, database, settings)
//   node check.mjs files EXPECTED.json VOLDIR          → keys/<KEY> and secrets.json hold exactly the values
//   node check.mjs healthz FIELD < body.json           → prints one field of a /healthz body
//   node check.mjs procs EXPECTED.json WANT OUT < DUMP → finds the app among a container's processes (DUMP:
//                                                        "PID PPID CMDLINE-B64 ENVIRON-B64" per line, see
//                                                        lib.sh): PID 1 whose argv is WANT (the wrapper exec'd
//                                                        it), or PID 1's child with argv WANT while PID 1 is
//                                                        `/bin/sh …/with-secrets.sh WANT` (restart mode);
//                                                        writes its environ to OUT, prints "MODE PID PID1-ARGV";
//                                                        fails when any process's argv holds a secret value.
//                                                        Exit 3: no such process (yet).
//   node check.mjs consumers < MODEL.json              → the services the override wraps, one per line:
//                                                        "NAME long DELAY ARGV..." or "NAME oneshot - ARGV..."
//                                                        (MODEL: `docker compose config --format json` of the
//                                                        whole project)
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

const [command, ...args] = process.argv.slice(2);
const problems = [];
const show = (v) => JSON.stringify(v).slice(0, 120);
const expectEqual = (what, actual, expected) => {
  if (actual !== expected) problems.push(`${what}: got ${show(actual)}, want ${show(expected)}`);
};
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

function envMap(environ) {
  const env = new Map();
  for (const entry of environ.split('\0')) {
    if (entry === '') continue;
    const i = entry.indexOf('=');
    env.set(entry.slice(0, i), entry.slice(i + 1));
  }
  return env;
}

/** The seed layout's database, or what a layout's base file says (postgres' POSTGRES_USER and POSTGRES_DB). */
let database = { user: 'glitchtip_maintainer', name: 'glitchtip' };
function derivedDatabaseUrl(expected, actual, what) {
  const m = new RegExp(`^postgres://${database.user}:([^@/?#\\s]*)@postgres:5432/${database.name}$`).exec(actual ?? '');
  if (!m) return problems.push(`${what}: DATABASE_URL has not the derived shape: ${show(actual)}`);
  expectEqual(`${what}: DATABASE_URL password, URL-decoded`, decodeURIComponent(m[1]), expected.POSTGRES_PASSWORD);
}

switch (command) {
  case 'flat': {
    const flat = {};
    for (const project of readJson(args[0]).projects)
      for (const env of Object.values(project.environments))
        for (const folder of Object.values(env.folders)) Object.assign(flat, folder.secrets);
    process.stdout.write(JSON.stringify(flat, null, 2) + '\n');
    break;
  }
  case 'env': {
    const [expectedFile, environFile, volDir, baseFile, service] = args;
    const expected = readJson(expectedFile);
    const env = envMap(readFileSync(environFile, 'utf8'));
    let settings = { GLITCHTIP_DOMAIN: 'https://glitchtip.example.test', PORT: '8000' };
    if (baseFile) {
      const base = readJson(baseFile).services;
      const pg = base.postgres.environment ?? {};
      database = { user: pg.POSTGRES_USER ?? 'postgres', name: pg.POSTGRES_DB ?? pg.POSTGRES_USER ?? 'postgres' };
      const own = base[service].environment ?? {};
      settings = Object.fromEntries(['GLITCHTIP_DOMAIN', 'PORT', 'SERVER_ROLE'].filter((k) => k in own).map((k) => [k, own[k]]));
    }
    for (const [key, value] of Object.entries(expected)) expectEqual(`env ${key}`, env.get(key), value);
    const dbUrl = readFileSync(`${volDir}/keys/DATABASE_URL`, 'utf8');
    expectEqual('env DATABASE_URL (vs keys/DATABASE_URL)', env.get('DATABASE_URL'), dbUrl);
    derivedDatabaseUrl(expected, env.get('DATABASE_URL'), 'env');
    // the base file's non-secret settings survive the wrapper
    for (const [key, value] of Object.entries(settings)) expectEqual(`env ${key} (base file)`, env.get(key), value);
    if (problems.length === 0) console.log(`${Object.keys(expected).length + 1} secrets byte-exact in the process environment`);
    break;
  }
  case 'files': {
    const [expectedFile, volDir] = args;
    const expected = readJson(expectedFile);
    const keys = readdirSync(`${volDir}/keys`).sort();
    expectEqual('keys/ entries', keys.join(','), [...Object.keys(expected), 'DATABASE_URL'].sort().join(','));
    for (const [key, value] of Object.entries(expected)) {
      expectEqual(`keys/${key}`, readFileSync(`${volDir}/keys/${key}`, 'utf8'), value);
    }
    const json = readJson(`${volDir}/secrets.json`);
    for (const [key, value] of Object.entries(expected)) expectEqual(`secrets.json ${key}`, json[key], value);
    derivedDatabaseUrl(expected, json.DATABASE_URL, 'secrets.json');
    if (problems.length === 0) console.log(`keys/* and secrets.json hold ${keys.length} values byte-exact`);
    break;
  }
  case 'healthz': {
    const body = JSON.parse(readFileSync(0, 'utf8'));
    const value = args[0].split('.').reduce((o, k) => (o == null ? undefined : o[k]), body);
    process.stdout.write(`${typeof value === 'object' ? JSON.stringify(value) : value}\n`);
    break;
  }
  case 'procs': {
    const [expectedFile, want, environOut] = args;
    const expected = readJson(expectedFile);
    const decode = (field) => (field === undefined || field === '-' ? undefined : Buffer.from(field, 'base64'));
    const procs = readFileSync(0, 'utf8').split('\n').filter(Boolean).map((line) => {
      const [pid, ppid, cmdline, environ] = line.split(' ');
      const argv = decode(cmdline)?.toString('utf8').split('\0');
      if (argv?.at(-1) === '') argv.pop();
      return { pid: Number(pid), ppid: Number(ppid), argv, environ: decode(environ) };
    });
    const pid1 = procs.find((p) => p.pid === 1);
    const apps = procs.filter((p) => (p.pid === 1 || p.ppid === 1) && p.argv?.join(' ') === want);
    // no secret in any process's argv (ps, /proc and `docker top` show argv to anyone on the host)
    const databaseUrl = apps.length === 1 ? envMap(apps[0].environ?.toString('utf8') ?? '').get('DATABASE_URL') : undefined;
    const values = Object.entries(expected).concat(databaseUrl ? [['DATABASE_URL', databaseUrl]] : []);
    for (const p of procs) {
      const argv = p.argv?.join('\0') ?? '';
      const leaked = values.filter(([, v]) => argv.includes(v) || argv.includes(v.split('\n')[0])).map(([k]) => k);
      if (leaked.length) problems.push(`the argv of pid ${p.pid} holds ${leaked.join(', ')}`);
    }
    if (problems.length === 0 && apps.length !== 1) {
      console.error(`no single app process '${want}' (PID 1: ${pid1?.argv?.join(' ')}); found ${apps.length}`);
      process.exit(3);
    }
    const [app] = apps;
    const mode = app.pid === 1 ? 'exec' : 'child';
    const wrapper = ['/bin/sh', '/run/glitchtip-secrets/with-secrets.sh', ...want.split(' ').slice(1)].join(' ');
    if (mode === 'child' && pid1?.argv?.join(' ') !== wrapper) {
      problems.push(`the app is pid ${app.pid}, but PID 1 is not the wrapper '${wrapper}': ${show(pid1?.argv?.join(' '))}`);
    }
    if (!app.environ) problems.push(`the environment of pid ${app.pid} is unreadable`);
    else writeFileSync(environOut, app.environ);
    if (problems.length === 0) console.log(`${mode} ${app.pid} ${pid1.argv.join(' ')}`);
    break;
  }
  case 'consumers': {
    for (const [name, service] of Object.entries(JSON.parse(readFileSync(0, 'utf8')).services)) {
      const env = service.environment ?? {};
      if (!('WITH_SECRETS_RESTART' in env)) continue;
      const kind = env.WITH_SECRETS_RESTART === 'false' ? 'oneshot -' : `long ${env.WITH_SECRETS_RESTART_DELAY}`;
      console.log(`${name} ${kind} ${service.command.join(' ')}`);
    }
    break;
  }
  default:
    console.error('usage: check.mjs flat|env|files|healthz|procs|consumers ...');
    process.exit(2);
}
if (problems.length > 0) {
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
