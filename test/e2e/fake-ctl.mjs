// Talks to the fake Infisical's control API from inside its own container (docker exec), so the test
// never needs a route from the host into the Compose network.
//   node fake-ctl.mjs METHOD PATH [-]   (a body, if any, is read from stdin when the third argument is "-")
const [method, path, bodyFlag] = process.argv.slice(2);
const chunks = [];
if (bodyFlag === '-') for await (const chunk of process.stdin) chunks.push(chunk);
const response = await fetch(`http://127.0.0.1:${process.env.FAKE_INFISICAL_PORT ?? 8090}${path}`, {
  method,
  headers: chunks.length ? { 'content-type': 'application/json' } : {},
  body: chunks.length ? Buffer.concat(chunks) : undefined,
});
process.stdout.write(await response.text());
process.exit(response.ok ? 0 : 1);
