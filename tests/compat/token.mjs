// The official client configured with a token against a rivetgreen host that requires one.
// Usage: node token.mjs <endpoint> <encoding> <token> <key>
import { createClient } from "rivetkit/client";

const [endpoint, encoding, token, key] = process.argv.slice(2);
const client = createClient({ endpoint, encoding, token });
const describe = (error) => ({ group: error.group ?? null, code: error.code ?? null, message: String(error.message) });

async function main() {
	const handle = client.counter.getOrCreate([key]);
	const viaQuery = await handle.increment(1);                 // rvt-token + x-rivet-token
	const resolved = await handle.resolve();                    // PUT /actors with Authorization: Bearer
	const viaId = await client.counter.getForId(resolved).increment(1);   // /gateway/{id}@{token}
	const conn = handle.connect();                              // WebSocket with the token
	const viaSocket = await conn.increment(1);
	await conn.dispose();
	const created = await client.counter.create([`${key}-new`]); // POST /actors
	const createdCount = await created.increment(5);
	let refused = null;
	try {
		await createClient({ endpoint, encoding, token: "wrong" }).counter.getOrCreate([key]).increment(1);
	} catch (error) {
		refused = describe(error);
	}
	return { viaQuery, viaId, viaSocket, createdCount, refused };
}

try {
	process.stdout.write(JSON.stringify({ ok: true, result: await main() }) + "\n");
	process.exit(0);
} catch (error) {
	process.stdout.write(JSON.stringify({ ok: false, error: String(error?.stack ?? error) }) + "\n");
	process.exit(1);
}
