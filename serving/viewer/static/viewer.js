// seqboltz view: draws a motion model's body from a live Steer stream (through the bridge's
// WebSocket) or from a BVH file, with orbit controls, a floor and a root trail.
//
// The bridge sends each frame as local joint translations and rotations (quaternions); the page
// poses a three.js Bone hierarchy with them and draws the joints' positions, computed by
// three.js from that hierarchy. `window.viewer` exposes what was drawn (for tests and the curious).
//
// Every frames message also carries the stream's resume state (the service's token, opaque here,
// and the body's root after those frames). When the WebSocket drops or the service's stream
// breaks (UNAVAILABLE, e.g. a restart), the page starts the stream again from that state, with
// a growing delay between tries: the frames that follow are those of the unbroken stream.
import * as THREE from 'three';
import { OrbitControls } from './vendor/three/OrbitControls.js';
import { BVHLoader } from './vendor/three/BVHLoader.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const HISTORY = 2000; // drawn frames kept for inspection
const TRAIL = 900; // root trail points

const viewer = {
  webgl: false,
  mode: 'idle', // idle | stream | bvh
  model: null, // ModelInfo JSON of the live stream
  skeleton: null, // skeleton JSON of the live stream
  frames: new Map(), // index -> {t, q} received, not yet drawn
  received: 0,
  lastReceived: -1,
  drawnIndex: -1,
  drawn: new Map(), // frame index -> [x, y, z, ...] joint then End Site positions (rig frame)
  roots: new Map(), // frame index -> [x, y, z] root position (every received frame)
  lastStatus: null,
  statuses: [],
  applied: [],
  playing: false,
  fps: 0,
  latenessMs: 0,
  message: '',
  resume: null, // the live stream's state after the last frames received (bridge.py: RESUME)
  resumes: 0, // times the live stream was resumed
  ws: null, // the live stream's WebSocket
};
window.viewer = viewer;

// ---- messages and status ------------------------------------------------------------------
function showMessage(text) {
  viewer.message = text;
  $('message').textContent = text;
  $('message').hidden = !text;
}

function setStatus(call, code, details) {
  const s = { call, code, details: details || '' };
  viewer.lastStatus = s;
  viewer.statuses.push(s);
  const el = $('status');
  el.textContent = `${call}: ${code}${details ? ' — ' + details : ''}`;
  el.className = code === 'OK' ? '' : 'bad';
}

function explain(call, code, details, what) {
  if (code === 'UNAVAILABLE') {
    return `The generation service at ${viewer.server || 'its address'} is down or unreachable ` +
      `(${call}: UNAVAILABLE${details ? ': ' + details : ''}). Start it with \`seqboltz serve\`, then reload.`;
  }
  if (code === 'NOT_FOUND') {
    return `Model ${JSON.stringify(what || '')} is unknown to the service (${call}: NOT_FOUND${details ? ': ' + details : ''}).`;
  }
  if (code === 'UNAUTHENTICATED' || code === 'PERMISSION_DENIED') {
    return `The service refused the call (${call}: ${code}${details ? ': ' + details : ''}). Enter the bearer token.`;
  }
  return `${call} failed: ${code}${details ? ': ' + details : ''}`;
}

// ---- scene --------------------------------------------------------------------------------
const view = $('view');
let renderer;
try {
  renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  const gl = renderer.getContext();
  viewer.webgl = !!gl && !gl.isContextLost();
  viewer.glRenderer = gl.getParameter(gl.RENDERER);
  viewer.glVersion = gl.getParameter(gl.VERSION);
} catch (err) {
  viewer.webgl = false;
  showMessage(`WebGL is unavailable in this browser: ${err.message || err}`);
}
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x2b2f36);
const camera = new THREE.PerspectiveCamera(45, 1, 0.1, 1e5);
const rig = new THREE.Group(); // the model's own axes, turned so that its up axis is three's +Y
scene.add(rig);
scene.add(new THREE.HemisphereLight(0xffffff, 0x404850, 2.2));
const sun = new THREE.DirectionalLight(0xffffff, 1.5);
sun.position.set(1, 2, 1.5);
scene.add(sun);
let controls = null;
if (renderer) {
  view.appendChild(renderer.domElement);
  controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = false;
  controls.addEventListener('change', () => { dirty = true; });
}
let dirty = true; // render only when something moved (software WebGL is costly)

function resize() {
  const w = Math.max(1, view.clientWidth), h = Math.max(1, view.clientHeight);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
  if (renderer) renderer.setSize(w, h);
  dirty = true;
}
window.addEventListener('resize', resize);
resize();

// ---- figure: draws any bone hierarchy --------------------------------------------------------
class Figure {
  // bones: THREE.Bone list with every parent before its children; scale: body size (units)
  constructor(bones, scale) {
    this.bones = bones;
    this.scale = scale;
    this.parents = bones.map((b) => bones.indexOf(b.parent));
    this.segments = [];
    bones.forEach((b, i) => { if (this.parents[i] >= 0) this.segments.push([this.parents[i], i]); });
    this.positions = new Float64Array(bones.length * 3);
    this.group = new THREE.Group();
    const r = scale * 0.018;
    const jointGeo = new THREE.SphereGeometry(r * 1.5, 12, 8);
    const boneGeo = new THREE.CylinderGeometry(r, r, 1, 8, 1);
    boneGeo.translate(0, 0.5, 0);
    this.joints = new THREE.InstancedMesh(jointGeo, new THREE.MeshStandardMaterial({ color: 0xffb74d }), bones.length);
    this.limbs = new THREE.InstancedMesh(boneGeo, new THREE.MeshStandardMaterial({ color: 0x4fc3f7 }), Math.max(1, this.segments.length));
    this.limbs.count = this.segments.length;
    this.joints.frustumCulled = this.limbs.frustumCulled = false;
    this.group.add(this.joints, this.limbs);
    this._m = new THREE.Matrix4();
    this._inv = new THREE.Matrix4();
    this._v = new THREE.Vector3();
    this._w = new THREE.Vector3();
    this._q = new THREE.Quaternion();
    this._up = new THREE.Vector3(0, 1, 0);
    this._s = new THREE.Vector3();
  }

  // joint positions in the rig's frame (the model's own coordinates), from three's hierarchy
  update() {
    const root = this.bones[0];
    root.parent.updateMatrixWorld(true);
    this._inv.copy(rig.matrixWorld).invert();
    const p = this.positions;
    this.bones.forEach((b, i) => {
      this._m.multiplyMatrices(this._inv, b.matrixWorld);
      this._v.setFromMatrixPosition(this._m);
      p[3 * i] = this._v.x; p[3 * i + 1] = this._v.y; p[3 * i + 2] = this._v.z;
    });
    this.bones.forEach((b, i) => {
      this._m.makeTranslation(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
      this.joints.setMatrixAt(i, this._m);
    });
    this.segments.forEach(([a, b], k) => {
      this._v.set(p[3 * a], p[3 * a + 1], p[3 * a + 2]);
      this._w.set(p[3 * b], p[3 * b + 1], p[3 * b + 2]).sub(this._v);
      const len = this._w.length();
      this._q.setFromUnitVectors(this._up, len > 1e-9 ? this._w.clone().divideScalar(len) : this._up);
      this._s.set(1, Math.max(len, 1e-6), 1);
      this._m.compose(this._v, this._q, this._s);
      this.limbs.setMatrixAt(k, this._m);
    });
    this.joints.instanceMatrix.needsUpdate = true;
    this.limbs.instanceMatrix.needsUpdate = true;
    return p;
  }

  dispose() {
    rig.remove(this.group);
    this.joints.geometry.dispose(); this.limbs.geometry.dispose();
  }
}

let figure = null;
let boneRoot = null; // where the bones hang (child of rig)
let floor = null;
const trailGeo = new THREE.BufferGeometry();
trailGeo.setAttribute('position', new THREE.BufferAttribute(new Float32Array(TRAIL * 3), 3));
trailGeo.setDrawRange(0, 0);
const trail = new THREE.Line(trailGeo, new THREE.LineBasicMaterial({ color: 0xff5252 }));
trail.frustumCulled = false;
rig.add(trail);
let trailCount = 0;
let upIndex = 1;

function setUpAxis(axis) {
  rig.rotation.set(0, 0, 0);
  if (axis === 'z') rig.rotation.x = -Math.PI / 2;
  if (axis === 'x') rig.rotation.z = Math.PI / 2;
  upIndex = { x: 0, y: 1, z: 2 }[axis] ?? 1;
  rig.updateMatrixWorld(true);
}

function setFigure(bones, scale, upAxis) {
  if (figure) figure.dispose();
  if (boneRoot) rig.remove(boneRoot);
  if (floor) scene.remove(floor);
  setUpAxis(upAxis);
  boneRoot = new THREE.Group();
  boneRoot.add(bones[0]);
  rig.add(boneRoot);
  figure = new Figure(bones, scale);
  rig.add(figure.group);
  viewer.boneNames = bones.map((b) => b.name);
  floor = new THREE.Group();
  const plane = new THREE.Mesh(
    new THREE.PlaneGeometry(scale * 40, scale * 40),
    new THREE.MeshStandardMaterial({ color: 0x3b4048, roughness: 1 }),
  );
  plane.rotation.x = -Math.PI / 2;
  plane.position.y = -scale * 0.002;
  const grid = new THREE.GridHelper(scale * 40, 40, 0x9aa0a8, 0x5d636b);
  floor.add(plane, grid);
  scene.add(floor);
  trailCount = 0;
  trailGeo.setDrawRange(0, 0);
  viewer.drawn.clear();
  viewer.roots.clear();
  camera.position.set(scale * 2.2, scale * 1.4, scale * 3.2);
  if (controls) { controls.target.set(0, scale * 0.9, 0); controls.update(); }
  viewer.scale = scale;
  viewer.upAxis = upAxis;
}

function pushTrail(x, y, z) {
  const a = trailGeo.attributes.position;
  if (trailCount === TRAIL) { a.array.copyWithin(0, 3); trailCount -= 1; }
  const p = [x, y, z];
  p[upIndex] = 0; // on the floor
  a.array.set(p, trailCount * 3);
  trailCount += 1;
  a.needsUpdate = true;
  trailGeo.setDrawRange(0, trailCount);
}

// keep the view on the body: move target and camera by the root's ground displacement
const lastRootWorld = new THREE.Vector3();
let haveRootWorld = false;
function follow(p) {
  if (!controls) return;
  const w = new THREE.Vector3(p[0], p[1], p[2]).applyMatrix4(rig.matrixWorld);
  w.y = 0;
  if (haveRootWorld) {
    const d = w.clone().sub(lastRootWorld);
    camera.position.add(d);
    controls.target.add(d);
  }
  lastRootWorld.copy(w);
  haveRootWorld = true;
  controls.update();
}

function record(index, p) {
  dirty = true;
  viewer.drawn.set(index, Array.from(p));
  if (viewer.drawn.size > HISTORY) viewer.drawn.delete(viewer.drawn.keys().next().value);
  viewer.drawnIndex = index;
}

// ---- live stream ----------------------------------------------------------------------------
let ws = null;
let stream = null; // {fps, t0, i0, requested, pausedAt}
const CREDIT = 60; // frames asked for when a stream starts or resumes
const RETRY_MS = [250, 500, 1000, 2000, 4000, 8000]; // waits before each resume try
let retries = 0;
let retryTimer = null;
let resuming = false; // the last start sent was a resume

function bonesFromSkeleton(sk) {
  const bones = sk.joints.map((j) => {
    const b = new THREE.Bone();
    b.name = j.name;
    b.position.fromArray(j.offset);
    return b;
  });
  sk.joints.forEach((j, i) => { if (j.parent >= 0) bones[j.parent].add(bones[i]); });
  sk.joints.forEach((j, i) => {
    if (j.end_site) {
      const e = new THREE.Bone();
      e.name = `${j.name}_end`;
      e.position.fromArray(j.end_site);
      bones[i].add(e);
      bones.push(e);
    }
  });
  return bones;
}

function styleValues() {
  return Array.from(document.querySelectorAll('#styles input[type=range]')).map((s) => Number(s.value));
}

function buildSliders(info) {
  const box = $('styles');
  box.innerHTML = '';
  for (let k = 0; k < info.style_size; k++) {
    const div = document.createElement('div');
    div.className = 'slider';
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = 'range'; input.min = '-3'; input.max = '3'; input.step = '0.05'; input.value = '0';
    input.id = `style-${k}`;
    label.htmlFor = input.id;
    const name = info.style_stats && info.style_stats.kind ? info.style_stats.kind : `style ${k}`;
    const show = () => { label.textContent = `${name} ${Number(input.value).toFixed(2)} (std units)`; };
    show();
    input.addEventListener('input', () => { show(); steer(); });
    div.append(label, input);
    box.append(div);
  }
  if (info.style_size && info.style_meaning) {
    const hint = document.createElement('div');
    hint.className = 'hint';
    hint.textContent = info.style_meaning;
    box.append(hint);
  }
}

let steerTimer = null;
function steer() {
  clearTimeout(steerTimer);
  steerTimer = setTimeout(() => {
    if (ws && ws.readyState === WebSocket.OPEN && viewer.mode === 'stream') {
      ws.send(JSON.stringify({ type: 'change', style: styleValues() }));
    }
  }, 40);
}

function stopStream() {
  clearTimeout(retryTimer);
  if (ws) { ws.onclose = null; ws.close(); ws = null; viewer.ws = null; }
  stream = null;
  viewer.playing = false;
}

function startStream() {
  stopStream();
  if (bvhAction) { bvhMixer.stopAllAction(); bvhAction = null; }
  showMessage('');
  const model = $('model').value || params.get('model') || '';
  const seed = Math.max(0, Math.floor(Number($('seed').value) || 0));
  viewer.mode = 'stream';
  viewer.frames.clear();
  viewer.received = 0; viewer.lastReceived = -1; viewer.drawnIndex = -1;
  viewer.applied = [];
  viewer.resume = null; viewer.resumes = 0; viewer.ended = false;
  retries = 0;
  haveRootWorld = false;
  viewer.pendingModel = model;
  connect(() => {
    const style = viewer.models?.find((m) => m.name === model)?.style_size ? styleValues() : [];
    return { type: 'start', model, seed, style, frames: CREDIT };
  });
}

// a WebSocket to the bridge that sends start() once open
function connect(start) {
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws = socket; viewer.ws = socket;
  socket.onopen = () => sendStart(start());
  socket.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  socket.onclose = () => {
    if (ws !== socket || viewer.mode !== 'stream' || viewer.ended) return;
    if (!retryResume('the connection to the viewer bridge dropped')) {
      setStatus('bridge', 'UNAVAILABLE', 'the viewer bridge closed the connection');
    }
  };
}

function sendStart(msg) {
  const token = $('token').value;
  if (token) msg.token = token;
  resuming = !!msg.resume;
  ws.send(JSON.stringify(msg));
}

function resumeMessage() {
  return { type: 'start', model: viewer.model.name, frames: CREDIT, resume: viewer.resume };
}

// continue the live stream from viewer.resume after a wait; false when it cannot (no state
// yet, or every try used)
function retryResume(reason) {
  if (!viewer.resume || !viewer.model || retries >= RETRY_MS.length) return false;
  const wait = RETRY_MS[retries];
  retries += 1;
  setStatus('resume', 'UNAVAILABLE', `${reason}; resuming at frame ${viewer.resume.frame} in ${wait} ms (try ${retries} of ${RETRY_MS.length})`);
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => {
    if (viewer.mode !== 'stream') return;
    if (ws && ws.readyState === WebSocket.OPEN) sendStart(resumeMessage());
    else connect(resumeMessage);
  }, wait);
  return true;
}

function onMessage(m) {
  if (m.type === 'model' && resuming && stream && viewer.model?.name === m.info.name) {
    // the same body goes on: the next frames continue the drawn ones; their pace restarts
    stream.t0 = null;
    stream.requested = viewer.resume.frame + CREDIT;
    const style = viewer.resume.style;
    if (style.length && styleValues().some((v, k) => v !== style[k])) steer(); // not yet applied
  } else if (m.type === 'model') {
    viewer.model = m.info;
    viewer.skeleton = m.skeleton;
    setFigure(bonesFromSkeleton(m.skeleton), m.skeleton.scale, m.skeleton.up_axis);
    const fps = m.info.frame_rate || m.skeleton.fps || 30;
    stream = { fps, t0: null, i0: 0, requested: CREDIT, pausedAt: null };
    if (!$('styles').children.length || $('styles').dataset.model !== m.info.name) {
      buildSliders(m.info);
      $('styles').dataset.model = m.info.name;
      if (m.info.style_size) steer(); // the sliders' values, if they differ from the start's
    }
    viewer.playing = true;
    $('play').disabled = false;
    $('play').textContent = 'Pause';
  } else if (m.type === 'frames') {
    const now = performance.now() / 1000;
    for (const f of m.frames) {
      viewer.frames.set(f.index, f);
      viewer.received += 1;
      viewer.lastReceived = Math.max(viewer.lastReceived, f.index);
      viewer.roots.set(f.index, f.t.slice(0, 3));
      if (viewer.roots.size > 20000) viewer.roots.delete(viewer.roots.keys().next().value);
      if (stream) {
        if (stream.t0 === null) { stream.t0 = now + 0.1; stream.i0 = f.index; }
        const due = stream.t0 + (f.index - stream.i0) / stream.fps;
        const late = Math.max(0, now - due) * 1000;
        viewer.latenessMs = viewer.latenessMs * 0.9 + late * 0.1;
      }
    }
    for (const a of m.applied) viewer.applied.push(a);
    if (m.resume) viewer.resume = m.resume;
    if (m.frames.length && resuming) { resuming = false; retries = 0; viewer.resumes += 1; showMessage(''); }
  } else if (m.type === 'status') {
    setStatus(m.call, m.code, m.details);
    if (m.code !== 'OK') {
      const broken = (m.call === 'GetModel' || m.call === 'Steer') && m.code === 'UNAVAILABLE';
      if (broken && viewer.mode === 'stream' && retryResume('the service is unavailable')) return;
      showMessage(explain(m.call, m.code, m.details, viewer.pendingModel));
      if (m.call === 'GetModel' || m.call === 'Steer') viewer.playing = false;
    }
  } else if (m.type === 'end') {
    viewer.playing = false;
    viewer.ended = true;
  }
}

function drawStreamFrame(now) {
  if (!stream || stream.t0 === null || !figure) return;
  if (!viewer.playing) return;
  const target = stream.i0 + Math.floor((now - stream.t0) * stream.fps);
  let f = null;
  for (let i = Math.min(target, viewer.lastReceived); i > viewer.drawnIndex; i--) {
    if (viewer.frames.has(i)) { f = viewer.frames.get(i); break; }
  }
  if (!f) return;
  for (const k of viewer.frames.keys()) if (k < f.index) viewer.frames.delete(k);
  const n = viewer.skeleton.joints.length;
  for (let j = 0; j < n; j++) {
    const b = figure.bones[j];
    b.position.set(f.t[3 * j], f.t[3 * j + 1], f.t[3 * j + 2]);
    b.quaternion.set(f.q[4 * j], f.q[4 * j + 1], f.q[4 * j + 2], f.q[4 * j + 3]);
  }
  const p = figure.update();
  for (let i = viewer.drawnIndex + 1; i <= f.index; i++) {
    const r = viewer.roots.get(i);
    if (r) pushTrail(r[0], r[1], r[2]);
  }
  record(f.index, p);
  follow(p);
  frameTimes.push(now);
  $('frame').textContent = String(f.index);
  // credit: keep about two seconds of frames asked for ahead of what is drawn
  if (ws && ws.readyState === WebSocket.OPEN && stream.requested - f.index < 2 * stream.fps) {
    const more = Math.ceil(stream.fps);
    ws.send(JSON.stringify({ type: 'more', frames: more }));
    stream.requested += more;
  }
}

function togglePlay() {
  const now = performance.now() / 1000;
  if (viewer.mode === 'stream' && stream) {
    if (viewer.playing) { stream.pausedAt = now; viewer.playing = false; }
    else {
      if (stream.pausedAt !== null && stream.t0 !== null) stream.t0 += now - stream.pausedAt;
      stream.pausedAt = null; viewer.playing = true;
    }
  } else if (viewer.mode === 'bvh' && bvhAction) {
    viewer.playing = !viewer.playing;
  }
  $('play').textContent = viewer.playing ? 'Pause' : 'Play';
}

// ---- BVH files --------------------------------------------------------------------------------
let bvhMixer = null;
let bvhAction = null;
let bvhClip = null;

// names of the joints of a BVH hierarchy that have position channels
function positionJoints(text) {
  const names = new Set();
  let current = null;
  for (const line of text.split('\n')) {
    const t = line.trim().split(/\s+/);
    if (t[0] === 'ROOT' || t[0] === 'JOINT') current = t[1];
    else if (t[0] === 'CHANNELS' && t.some((c) => /position$/i.test(c))) names.add(current);
    else if (t[0] === 'MOTION') break;
  }
  return names;
}

function openBvh(text, name) {
  stopStream();
  showMessage('');
  let result;
  try {
    result = new BVHLoader().parse(text);
  } catch (err) {
    showMessage(`Cannot read ${name} as BVH: ${err.message || err}`);
    setStatus('open', 'INVALID_ARGUMENT', `${name}: ${err.message || err}`);
    return;
  }
  const bones = result.skeleton.bones;
  // three's loader adds a joint's OFFSET to its position channels; BVH tools (Blender,
  // MotionBuilder) and seqboltz.motion let the channels replace it: undo the addition
  const positioned = positionJoints(text);
  for (const track of result.clip.tracks) {
    const bone = bones.find((b) => `${b.name}.position` === track.name);
    if (!bone || !positioned.has(bone.name)) continue;
    const o = bone.position;
    for (let k = 0; k < track.values.length; k += 3) {
      track.values[k] -= o.x; track.values[k + 1] -= o.y; track.values[k + 2] -= o.z;
    }
  }
  const box = new THREE.Box3();
  bones[0].updateMatrixWorld(true);
  bones.forEach((b) => box.expandByPoint(new THREE.Vector3().setFromMatrixPosition(b.matrixWorld)));
  const size = box.getSize(new THREE.Vector3());
  const scale = Math.max(size.x, size.y, size.z) || 1;
  setFigure(bones, scale, size.z > 1.5 * size.y ? 'z' : 'y');
  bvhClip = result.clip;
  bvhMixer = new THREE.AnimationMixer(bones[0]);
  bvhAction = bvhMixer.clipAction(bvhClip);
  bvhAction.play();
  const times = bvhClip.tracks[0]?.times || [0, 1 / 30];
  viewer.bvh = { name, frames: times.length, fps: times.length > 1 ? 1 / (times[1] - times[0]) : 30, duration: bvhClip.duration };
  viewer.mode = 'bvh';
  viewer.playing = true;
  viewer.bvhFrame = -1;
  haveRootWorld = false;
  $('styles').innerHTML = ''; delete $('styles').dataset.model;
  $('play').disabled = false;
  $('play').textContent = 'Pause';
  setStatus('open', 'OK', `${name}: ${viewer.bvh.frames} frames at ${viewer.bvh.fps.toFixed(1)} fps`);
}

function drawBvhFrame(dt, now) {
  if (!bvhMixer || !figure) return;
  if (viewer.playing) bvhMixer.update(dt);
  const index = Math.floor(bvhAction.time * viewer.bvh.fps + 1e-6);
  if (index === viewer.bvhFrame && !viewer.playing) return;
  const p = figure.update();
  if (index < viewer.bvhFrame) { trailCount = 0; }
  pushTrail(p[0], p[1], p[2]);
  if (index !== viewer.bvhFrame) frameTimes.push(now);
  viewer.bvhFrame = index;
  record(index, p);
  follow(p);
  $('frame').textContent = String(index);
}

// show frame `index` of the open BVH file, paused (its keyframe, not an interpolation)
viewer.seekBvh = (index) => {
  if (!bvhAction) return false;
  viewer.playing = false;
  $('play').textContent = 'Play';
  bvhAction.time = index / viewer.bvh.fps;
  bvhMixer.update(0);
  viewer.bvhFrame = -1;
  drawBvhFrame(0, performance.now() / 1000);
  return viewer.bvhFrame === index;
};

$('bvh').addEventListener('change', async (ev) => {
  const file = ev.target.files[0];
  if (file) openBvh(await file.text(), file.name);
});
viewer.openBvhText = openBvh;

// ---- models -----------------------------------------------------------------------------------
async function loadModels() {
  let body;
  try {
    const r = await fetch('/api/config');
    viewer.server = (await r.json()).server;
    $('server').textContent = `service: ${viewer.server}`;
    const token = $('token').value;
    const res = await fetch('/api/models', token ? { headers: { Authorization: `Bearer ${token}` } } : {});
    body = await res.json();
  } catch (err) {
    setStatus('ListModels', 'UNAVAILABLE', `the viewer bridge is not answering: ${err.message || err}`);
    showMessage('The viewer bridge is not answering; is `seqboltz view` still running?');
    return false;
  }
  setStatus('ListModels', body.code, body.details || `${(body.models || []).length} model(s)`);
  if (body.code !== 'OK') { showMessage(explain('ListModels', body.code, body.details)); return false; }
  viewer.models = body.models;
  const select = $('model');
  select.innerHTML = '';
  const wanted = params.get('model');
  const motion = body.models.filter((m) => m.domain === 'motion');
  for (const m of motion) {
    const o = document.createElement('option');
    o.value = m.name;
    o.textContent = `${m.name} (${m.kind}${m.style_size ? ', style' : ''})`;
    select.append(o);
  }
  if (wanted && !motion.some((m) => m.name === wanted)) {
    const o = document.createElement('option');
    o.value = wanted; o.textContent = `${wanted} (?)`;
    select.append(o);
  }
  if (wanted) select.value = wanted;
  if (!motion.length) showMessage('The service holds no motion model to draw.');
  const info = body.models.find((m) => m.name === select.value);
  if (info) buildSliders(info), ($('styles').dataset.model = info.name);
  return true;
}

$('model').addEventListener('change', () => {
  const info = (viewer.models || []).find((m) => m.name === $('model').value);
  if (info) { buildSliders(info); $('styles').dataset.model = info.name; }
});
$('start').addEventListener('click', startStream);
$('play').addEventListener('click', togglePlay);
if (params.has('seed')) $('seed').value = params.get('seed');

// ---- loop -----------------------------------------------------------------------------------
const frameTimes = [];
let last = performance.now() / 1000;
let lastStats = 0;
function loop() {
  const now = performance.now() / 1000;
  const dt = Math.min(0.1, now - last);
  last = now;
  if (viewer.mode === 'stream') drawStreamFrame(now);
  else if (viewer.mode === 'bvh') drawBvhFrame(dt, now);
  while (frameTimes.length && frameTimes[0] < now - 1) frameTimes.shift();
  if (now - lastStats > 0.25) {
    lastStats = now;
    viewer.fps = frameTimes.length;
    $('fps').textContent = String(viewer.fps);
    $('lateness').textContent = viewer.mode === 'stream' ? `${viewer.latenessMs.toFixed(0)} ms` : '–';
    $('speed').textContent = viewer.mode === 'stream' ? `${rootSpeed(30).toFixed(1)} /s` : '–';
  }
  if (renderer && dirty) {
    renderer.render(scene, camera);
    dirty = false;
  }
  requestAnimationFrame(loop);
}

// ground-plane root speed (units per second) over the last n received frames
function rootSpeed(n, upTo) {
  if (!stream) return 0;
  const end = upTo ?? viewer.lastReceived;
  const a = viewer.roots.get(end - n), b = viewer.roots.get(end);
  if (!a || !b) return 0;
  let d2 = 0;
  for (let k = 0; k < 3; k++) if (k !== upIndex) d2 += (b[k] - a[k]) ** 2;
  return Math.sqrt(d2) / n * stream.fps;
}
viewer.rootSpeed = rootSpeed;

requestAnimationFrame(loop);
loadModels().then((ok) => {
  viewer.ready = true;
  if (ok && params.get('autoplay') === '1') startStream();
});
