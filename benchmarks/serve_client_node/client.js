// Load client of benchmarks/serve.py (--client node): many paced Steer streams against a
// seqboltz server, outside Python, so the measurement's client costs little of the CPU the
// server shares with it.
//
//   node client.js '{"address": "127.0.0.1:50051", "proto": ".../generation.proto",
//                    "streams": 1000, "frames": 600, "framesPerMessage": 10, "rate": 30,
//                    "rampSeconds": 1, "steerEvery": 5, "action": "observe", "seed": 0}'
//
// Each stream is a Steer call (realtime, framesPerMessage frames a message) started at a
// random moment within rampSeconds. It plays frame i at first + i / rate (first: the arrival
// of its first frame) and keeps, per index, the arrival of the version it plays: a message
// with revises = true replaces the frames held from its first index on (proto/generation.proto).
// Every steerEvery seconds on average (exponential gaps) it sends a change ("observe": its
// latest frame as observed history; "change": a random style in [-1, 1]); the change shows at
// Applied.frame, so its latency is max(arrival of that frame, its play time) - the time sent.
// Prints one JSON line: lateness of every frame (arrival - play time, ms) and of every
// message's first frame, the change latencies, errors, and the client's CPU seconds.
"use strict";

const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const args = JSON.parse(process.argv[2]);
const definition = protoLoader.loadSync(args.proto, {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  includeDirs: [require("path").resolve(require("path").dirname(args.proto), "..", "..")],
});
const steer = definition["seqboltz.v1.Generation"].Steer;
const channels = [];
const nChannels = args.channels || 1;
for (let i = 0; i < nChannels; i++) {
  channels.push(
    new grpc.Client(args.address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
      "seqboltz.channel": i, // a channel of its own (grpc-js shares equal channels' connections)
    }),
  );
}

// FrameChunk decoder (proto/seqboltz/v1/generation.proto): every frame's index, and where its
// values lie (packed doubles are little-endian float64 on the wire); the resume token stays
// the bytes it came as (a client keeps it opaque until it resumes). Requests are encoded by
// @grpc/proto-loader.
function varint(buf, pos) {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = buf[pos++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, pos];
    scale *= 128;
  }
}

function skip(buf, pos, wire) {
  if (wire === 0) return varint(buf, pos)[1];
  if (wire === 1) return pos + 8;
  if (wire === 5) return pos + 4;
  const [len, p] = varint(buf, pos);
  return p + len;
}

function decodeFrame(buf, pos, end) {
  // the index, and where the values lie: they are copied only when needed (the latest frame
  // of a stream, when it is sent back as observed history), not for every frame received
  const frame = { index: 0, buf, valuesAt: 0, valuesEnd: 0 };
  while (pos < end) {
    const [key, p] = varint(buf, pos);
    pos = p;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (field === 1 && wire === 0) {
      [frame.index, pos] = varint(buf, pos);
    } else if (field === 2 && wire === 2) {
      const [len, q] = varint(buf, pos);
      frame.valuesAt = q;
      frame.valuesEnd = q + len;
      pos = q + len;
    } else {
      pos = skip(buf, pos, wire);
    }
  }
  return frame;
}

function frameValues(frame) {
  // a copy: the message buffer's offset need not be 8-byte aligned
  const { buf, valuesAt, valuesEnd } = frame;
  return new Float64Array(buf.buffer.slice(buf.byteOffset + valuesAt, buf.byteOffset + valuesEnd));
}

function decodeApplied(buf, pos, end) {
  const applied = { action: "", frame: 0 };
  while (pos < end) {
    const [key, p] = varint(buf, pos);
    pos = p;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (field === 1 && wire === 2) {
      const [len, q] = varint(buf, pos);
      applied.action = buf.toString("utf8", q, q + len);
      pos = q + len;
    } else if (field === 2 && wire === 0) {
      [applied.frame, pos] = varint(buf, pos);
    } else {
      pos = skip(buf, pos, wire);
    }
  }
  return applied;
}

function decodeChunk(buf) {
  const chunk = { seed: 0, frames: [], applied: [], resume: null, revises: false };
  let pos = 0;
  while (pos < buf.length) {
    const [key, p] = varint(buf, pos);
    pos = p;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 2) {
      const [len, q] = varint(buf, pos);
      if (field === 2) chunk.frames.push(decodeFrame(buf, q, q + len));
      else if (field === 3) chunk.applied.push(decodeApplied(buf, q, q + len));
      else if (field === 4) chunk.resume = buf.subarray(q, q + len);
      pos = q + len;
    } else if (field === 1 && wire === 0) {
      [chunk.seed, pos] = varint(buf, pos);
    } else if (field === 5 && wire === 0) {
      let v;
      [v, pos] = varint(buf, pos);
      chunk.revises = v !== 0;
    } else {
      pos = skip(buf, pos, wire);
    }
  }
  return chunk;
}

function steerCall(channel) {
  return channel.makeBidiStreamRequest(
    "/seqboltz.v1.Generation/Steer",
    steer.requestSerialize,
    decodeChunk,
  );
}

const rate = args.rate || 30;
const perMessage = args.framesPerMessage || 1;
const frames = args.frames;
const late = []; // ms, every frame (the version played)
const messageLate = []; // ms, the first frame of every message that is not a revision
const steerMs = []; // ms, change sent -> first frame showing it played
const startMs = []; // ms, call started -> its first frame arrived
let errors = 0;
const errorCodes = {};
let received = 0;
let revisions = 0;
let messages = 0;
let random = (args.seed || 0) + 12345;
function uniform() {
  // a small deterministic generator (xorshift32), so runs are repeatable
  random ^= random << 13;
  random ^= random >>> 17;
  random ^= random << 5;
  return (random >>> 0) / 4294967296;
}

function nowMs() {
  return performance.now();
}

function runStream(j) {
  return new Promise((resolve) => {
    const call = steerCall(channels[j % nChannels]);
    const started = nowMs();
    const arrival = new Float64Array(frames).fill(NaN);
    const changes = []; // send times of changes not yet applied (in order)
    let first = null;
    let latest = null;
    let timer = null;
    let done = false;
    let ended = false; // our side finished: no more changes
    const start = {
      model: args.model || "",
      n_frames: frames,
      seed: (args.seed || 0) * 100000 + j,
      realtime: true,
      frames_per_message: perMessage,
    };
    call.write({ start });

    function scheduleChange() {
      if (!args.steerEvery) return;
      const gap = -Math.log(1 - uniform()) * args.steerEvery * 1000;
      timer = setTimeout(() => {
        if (done || ended || latest === null) return;
        const message =
          args.action === "change"
            ? { change: { style: [uniform() * 2 - 1] } }
            : { observe: { values: Array.from(frameValues(latest)) } };
        changes.push(nowMs());
        call.write(message);
        scheduleChange();
      }, gap);
    }

    call.on("data", (chunk) => {
      const t = nowMs();
      messages += 1;
      if (chunk.frames.length) {
        if (first === null) {
          first = t - chunk.frames[0].index * (1000 / rate);
          startMs.push(t - started);
          scheduleChange();
        }
        if (chunk.revises) revisions += 1;
        else messageLate.push(t - (first + chunk.frames[0].index * (1000 / rate)));
        for (const f of chunk.frames) {
          arrival[f.index] = t;
          received += 1;
        }
        latest = chunk.frames[chunk.frames.length - 1];
      }
      for (const a of chunk.applied) {
        if (a.action === "more_frames") continue;
        const sent = changes.shift();
        if (sent === undefined || first === null) continue;
        if (a.frame >= frames) continue; // after the last frame: no frame shows it
        const shown = Math.max(t, first + a.frame * (1000 / rate));
        steerMs.push(shown - sent);
      }
    });
    call.on("error", (err) => {
      errors += 1;
      const key = `${err.code} ${String(err.details).slice(0, 120)}`;
      errorCodes[key] = (errorCodes[key] || 0) + 1;
      if (args.progress && errorCodes[key] === 1) console.error("error", key);
    });
    call.on("status", () => {
      // the call is over (after its last message, or its error)
      done = true;
      clearTimeout(timer);
      if (first !== null) {
        for (let i = 0; i < frames; i++) {
          if (!Number.isNaN(arrival[i])) late.push(arrival[i] - (first + i * (1000 / rate)));
        }
      }
      resolve();
    });
    // the stream has all its frames once the server ends it; finish our side after the last
    // frame's time so that changes can still be sent until then
    setTimeout(
      () => {
        ended = true;
        call.end();
      },
      (frames / rate) * 1000 + 100,
    );
  });
}

function summary(values) {
  const sorted = Float64Array.from(values).sort();
  const at = (q) => {
    if (!sorted.length) return null;
    const pos = (sorted.length - 1) * q;
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  };
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: at(1) };
}

async function main() {
  const cpu0 = process.cpuUsage();
  const t0 = nowMs();
  const ramp = (args.rampSeconds || 0) * 1000;
  const runs = [];
  let finished = 0;
  const progress = args.progress
    ? setInterval(() => {
        console.error(JSON.stringify({ t: (nowMs() - t0) / 1000, finished, received, messages, errors }));
      }, 1000)
    : null;
  for (let j = 0; j < args.streams; j++) {
    const delay = ramp * uniform();
    runs.push(
      new Promise((r) =>
        setTimeout(
          () =>
            runStream(j).then(() => {
              finished += 1;
              r();
            }),
          delay,
        ),
      ),
    );
  }
  await Promise.all(runs);
  if (progress) clearInterval(progress);
  const cpu = process.cpuUsage(cpu0);
  const wall = (nowMs() - t0) / 1000;
  for (const c of channels) c.close();
  console.log(
    JSON.stringify({
      client: "node",
      streams: args.streams,
      frames_per_message: perMessage,
      wall_s: wall,
      client_cpu_s: (cpu.user + cpu.system) / 1e6,
      frames_received: received,
      frames_expected: args.streams * frames,
      messages,
      revisions,
      errors,
      error_codes: errorCodes,
      late_ms: summary(late),
      message_late_ms: summary(messageLate),
      steer_ms: summary(steerMs),
      start_ms: summary(startMs),
    }),
  );
}

main();
