// Load generator of bench/http_bench.py (copied to .cache/node, where the official client rivetkit@2.3.19 and
// `ws` are installed, because ES modules resolve packages from the script's own folder).
//
// Usage: node http_bench.mjs <mode> <json options>
//   http-client  64 closed-loop callers, each calling increment(1) on its own actor through the official client
//   http-client-seq  one caller, one actor, one call after the other through the official client (keep-alive)
//   http-fetch   the same load with plain fetch POSTs shaped like the client's (URL, headers, chunked body)
//   ws-client    one official connection, a window of calls in flight
//   ws-raw       one `ws` socket speaking the minimal bare protocol, the same window
//
// Progress lines go to stdout: "MEASURE_START" and "MEASURE_END" (the parent samples the server's CPU time
// there), then one line "RESULT {json}". Every loop is bounded by a call count and a deadline, and a watchdog
// ends the process if a phase stalls.
import { createClient } from "rivetkit/client";
import WebSocket from "ws";

const [mode, rawOptions] = process.argv.slice(2);
const options = JSON.parse(rawOptions);
const { endpoint, warmupMs, durationMs, maxCalls } = options;
const STALL_GRACE_MS = 30_000;

const now = () => performance.now();

function emit(line) {
	process.stdout.write(`${line}\n`);
}

function finish(result) {
	emit(`RESULT ${JSON.stringify(result)}`);
	process.exit(0);
}

// If anything hangs (a server that stops answering), report what we have and leave.
const watchdog = setTimeout(() => {
	finish({ ok: false, error: "stalled: the phase did not finish in time" });
}, warmupMs + durationMs + 2 * STALL_GRACE_MS);

function percentile(sorted, p) {
	if (sorted.length === 0) return null;
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Runs `workers` async loops, each awaiting `call(worker)` until the deadline or until `limit` calls started.
// With N workers there are always N calls outstanding: N closed-loop callers, or a window of N in flight.
async function runLoops(workers, call, ms, limit, latencies) {
	const deadline = now() + ms;
	let started = 0;
	let done = 0;
	let errors = 0;
	let firstError = null;
	const start = now();
	const loop = async (worker) => {
		while (started < limit && now() < deadline) {
			started += 1;
			const t0 = now();
			try {
				await call(worker);
				done += 1;
				if (latencies && latencies.length < latencies.cap) latencies.push(now() - t0);
			} catch (error) {
				errors += 1;
				firstError ??= String(error?.message ?? error);
				if (errors > 1000) throw new Error(`too many errors; first: ${firstError}`);
			}
		}
	};
	await Promise.all(Array.from({ length: workers }, (_, worker) => loop(worker)));
	return { calls: done, errors, firstError, seconds: (now() - start) / 1000 };
}

async function measure(workers, call) {
	// Warm-up: every worker makes at least one call (creating its actor), then the loop runs for warmupMs.
	await Promise.all(Array.from({ length: workers }, (_, worker) => call(worker)));
	await runLoops(workers, call, warmupMs, maxCalls, null);
	const latencies = [];
	latencies.cap = 1_000_000;
	const cpu0 = process.cpuUsage();
	emit("MEASURE_START");
	const run = await runLoops(workers, call, durationMs, maxCalls, latencies);
	emit("MEASURE_END");
	const cpu = process.cpuUsage(cpu0);
	latencies.sort((a, b) => a - b);
	return {
		ok: run.errors === 0,
		...run,
		perSecond: run.calls / run.seconds,
		p50Ms: percentile(latencies, 50),
		p99Ms: percentile(latencies, 99),
		clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
	};
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------------------
async function httpClient() {
	const client = createClient({ endpoint, encoding: "bare" });
	const handles = Array.from({ length: options.actors }, (_, i) => client.counter.getOrCreate([`k${i}`]));
	const result = await measure(options.actors, (i) => handles[i].increment(1));
	await client.dispose();
	return result;
}

async function httpClientSequential() {
	const client = createClient({ endpoint, encoding: "bare" });
	const handle = client.counter.getOrCreate(["seq"]);
	const result = await measure(1, () => handle.increment(1));
	await client.dispose();
	return result;
}

// The request the official client makes for `getOrCreate(["k{i}"]).increment(1)` with bare encoding
// (client-protocol.md §3 and A.1): the query form of the gateway URL, the same headers, and the body re-streamed
// (so sent chunked) exactly as `sendHttpRequestToGateway` does.
const ACTION_BODY = new Uint8Array([0x04, 0x00, 0x02, 0x81, 0x01]); // version 4, HttpActionRequest{args: [1]}

async function httpFetch() {
	const urls = Array.from(
		{ length: options.actors },
		(_, i) =>
			`${endpoint}/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate` +
			`&rvt-runner=default&rvt-key=k${i}&rvt-crash-policy=sleep`,
	);
	const call = async (i) => {
		const actorRequest = new Request("http://actor/action/increment", {
			method: "POST",
			headers: { "content-type": "application/octet-stream", "x-rivet-encoding": "bare" },
			body: ACTION_BODY,
		});
		const headers = new Headers(actorRequest.headers);
		headers.set("user-agent", "RivetKit/2.3.19");
		const response = await fetch(urls[i], {
			method: "POST",
			headers,
			body: actorRequest.body,
			duplex: "half",
		});
		const body = new Uint8Array(await response.arrayBuffer());
		if (!response.ok || body[0] !== 0x04 || body[1] !== 0x00) {
			throw new Error(`unexpected response ${response.status}`);
		}
		return body;
	};
	// The client's one metadata look-up, for the same connection set-up.
	await fetch(`${endpoint}/metadata?namespace=default`).then((r) => r.arrayBuffer());
	return measure(options.actors, call);
}

// ---------------------------------------------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------------------------------------------
async function wsClient() {
	const client = createClient({ endpoint, encoding: "bare" });
	const conn = client.counter.getOrCreate(["ws"]).connect();
	const result = await measure(options.window, () => conn.increment(1));
	await conn.dispose();
	await client.dispose();
	return result;
}

function readUint(bytes, offset) {
	// LEB128, as BARE writes uints
	let value = 0;
	let shift = 1;
	for (;;) {
		const byte = bytes[offset];
		offset += 1;
		value += (byte & 0x7f) * shift;
		if (byte < 0x80) return [value, offset];
		shift *= 128;
	}
}

function writeUint(value) {
	const out = [];
	do {
		let byte = value % 128;
		value = Math.floor(value / 128);
		if (value > 0) byte |= 0x80;
		out.push(byte);
	} while (value > 0);
	return out;
}

const NAME = [...new TextEncoder().encode("increment")];

async function wsRaw() {
	const url = `${endpoint}/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=ws&rvt-crash-policy=sleep`;
	const ws = new WebSocket(url, ["rivet", "rivet_encoding.bare"]);
	ws.binaryType = "arraybuffer";
	const waiting = []; // resolvers of the calls in flight, answered in order
	let nextId = 0;
	let opened;
	const ready = new Promise((resolve, reject) => {
		opened = resolve;
		ws.on("error", reject);
		ws.on("close", (code) => reject(new Error(`closed ${code}`)));
	});
	ws.on("message", (data) => {
		const bytes = new Uint8Array(data);
		if (bytes[0] !== 0x04 || bytes[1] !== 0x00) throw new Error("not a version 4 frame");
		if (bytes[2] === 0x00) {
			opened(); // Init
		} else if (bytes[2] === 0x02) {
			readUint(bytes, 3); // ActionResponse{id, output}: the baseline always answers id 0
			waiting.shift()?.();
		} else {
			throw new Error(`unexpected message tag ${bytes[2]}`);
		}
	});
	await ready;
	const call = () =>
		new Promise((resolve) => {
			const frame = Uint8Array.from([0x04, 0x00, 0x00, ...writeUint(nextId), NAME.length, ...NAME, 0x02, 0x81, 0x01]);
			nextId += 1;
			waiting.push(resolve);
			ws.send(frame);
		});
	const result = await measure(options.window, call);
	ws.close(1000, "Disposed");
	return result;
}

const modes = {
	"http-client": httpClient,
	"http-client-seq": httpClientSequential,
	"http-fetch": httpFetch,
	"ws-client": wsClient,
	"ws-raw": wsRaw,
};

try {
	const result = await modes[mode]();
	clearTimeout(watchdog);
	finish(result);
} catch (error) {
	finish({ ok: false, error: String(error?.stack ?? error) });
}
