// The official client with non-Latin-1 actor keys: an action call over HTTP, then a connection, per key.
// Usage: node unicode_keys.mjs <endpoint> <encoding> <suffix>
import { createClient } from "rivetkit/client";

const [endpoint, encoding, suffix] = process.argv.slice(2);
const client = createClient({ endpoint, encoding });

async function roundTrip(key) {
	const handle = client.counter.getOrCreate(key);
	const viaHttp = await handle.increment(1);
	const conn = handle.connect();
	const viaConnection = await conn.increment(2);
	await conn.dispose();
	const viaGet = await client.counter.get(key).getCount();
	const id = await handle.resolve();
	const viaId = await client.counter.getForId(id).getCount();
	return { viaHttp, viaConnection, viaGet, viaId };
}

async function main() {
	return {
		japanese: await roundTrip(["日本", suffix]),
		emoji: await roundTrip(["😀", suffix]),
		single: await roundTrip([`日本-${suffix}`]),
	};
}

try {
	process.stdout.write(JSON.stringify({ ok: true, result: await main() }) + "\n");
	process.exit(0);
} catch (error) {
	process.stdout.write(JSON.stringify({ ok: false, error: String(error?.stack ?? error) }) + "\n");
	process.exit(1);
}
