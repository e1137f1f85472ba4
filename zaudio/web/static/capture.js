// The capture page: microphone -> AudioWorklet -> binary WebSocket frames of
// float32 -> the zaudio web server, which publishes each frame as one block.
// Protocol: one JSON "hello" (stream, sampleRate, channels, clock mapping),
// then binary frames; the server answers {"type":"ready"} or {"type":"error"}.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.-]+)*$/;

let session = null;  // the running capture, or null

function setState(state, detail) {
  const el = $("state");
  el.textContent = state;
  el.dataset.state = state;
  $("detail").textContent = detail || "";
}

function showLevel(rms, peak) {
  const db = rms > 0 ? 20 * Math.log10(rms) : -100;
  const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
  const bar = $("bar");
  bar.style.width = pct + "%";
  bar.style.setProperty("--full", pct > 0 ? (10000 / pct) + "%" : "100%");
  const meter = $("meter");
  meter.dataset.level = rms.toFixed(4);
  meter.dataset.peak = peak.toFixed(4);
  meter.dataset.db = db.toFixed(1);
  $("level").textContent = db > -100 ? db.toFixed(1) + " dBFS" : "-inf dBFS";
}

class Session {
  constructor(stream, channels, processing) {
    this.stream = stream;
    this.channels = channels;
    this.processing = processing;
    this.stopped = false;
    this.ws = null;
    this.retry = 1;
    this.sent = 0;
    this.hello = false;
  }

  async start() {
    setState("connecting", "asking for the microphone");
    const p = this.processing;
    this.media = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: { ideal: this.channels },
        echoCancellation: p, noiseSuppression: p, autoGainControl: p,
      },
      video: false,
    });
    const rate = params.get("rate") || "48000";
    const opts = rate === "device" ? {} : { sampleRate: Number(rate) };
    try {
      this.ctx = new AudioContext(opts);
    } catch (err) {
      this.ctx = new AudioContext();  // the rate asked for is not supported here
    }
    const ctx = this.ctx;
    await ctx.audioWorklet.addModule("/static/worklet.js");
    this.blockFrames = Number(params.get("block")) || Math.round(ctx.sampleRate / 50);
    this.source = ctx.createMediaStreamSource(this.media);
    this.node = new AudioWorkletNode(ctx, "zaudio-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      channelCount: this.channels, channelCountMode: "explicit",
      channelInterpretation: "speakers",
      processorOptions: { channels: this.channels, blockFrames: this.blockFrames },
    });
    // a silent path to the output keeps the graph (and the worklet) running
    this.mute = new GainNode(ctx, { gain: 0 });
    this.source.connect(this.node).connect(this.mute).connect(ctx.destination);
    this.node.port.onmessage = (ev) => this.onBlock(ev.data);
    if (ctx.state !== "running") {
      await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, 500))]);
    }
    if (ctx.state !== "running") {
      setState("waiting", "click anywhere to start the audio (the browser blocked autostart)");
      await new Promise((resolve) => {
        document.addEventListener("click", () => ctx.resume().then(resolve), { once: true });
      });
    }
    const settings = this.media.getAudioTracks()[0].getSettings();
    this.inputLatency = typeof settings.latency === "number" ? settings.latency : 0;
    $("info").textContent = `${ctx.sampleRate} Hz, ${this.channels} channel(s), ` +
      `${this.blockFrames}-frame blocks, processing ${p ? "on" : "off"}`;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    setState("connecting", "connecting to the server");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/capture`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.hello = false;
    this.reason = "";
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (err) { return; }
      if (msg.type === "ready") {
        this.retry = 1;
        setState("live", `stream ${msg.stream} at ${msg.rate} Hz (src ${msg.src})`);
      } else if (msg.type === "error") {
        this.reason = msg.reason;
      }
    };
    ws.onclose = (ev) => this.onClose(ev);
  }

  onBlock(block) {
    const data = block.data;
    let sum = 0, peak = 0;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      sum += v * v;
      const a = Math.abs(v);
      if (a > peak) peak = a;
    }
    showLevel(Math.sqrt(sum / data.length), peak);
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;  // not part of any stream
    if (!this.hello) {
      // the first block sent fixes the stream's clock: its AudioContext time,
      // and the context time now, which the server maps to its own clock
      ws.send(JSON.stringify({
        type: "hello", stream: this.stream, sampleRate: this.ctx.sampleRate,
        channels: this.channels, blockFrames: this.blockFrames,
        firstFrameTime: block.t, contextTime: this.ctx.currentTime,
        inputLatency: this.inputLatency,
        timeOrigin: performance.timeOrigin, performanceTime: performance.now(),
        dateNow: Date.now(), userAgent: navigator.userAgent,
      }));
      this.hello = true;
    }
    if (ws.bufferedAmount > 10 * this.ctx.sampleRate * this.channels * 4) {
      this.reason = "the network is too slow for this stream (10 s behind)";
      ws.close(1000, "too slow");
      return;
    }
    ws.send(data.buffer);
    this.sent++;
  }

  onClose(ev) {
    this.ws = null;
    if (this.stopped) return;
    const reason = this.reason || ev.reason || `connection closed (code ${ev.code})`;
    if (ev.code >= 4400 && ev.code < 4409) {
      setState("error", reason);  // the server will refuse the same again
      this.stop(false);
      return;
    }
    const wait = this.retry;
    this.retry = Math.min(this.retry * 2, 10);
    setState("error", `${reason}; reconnecting in ${wait} s`);
    this.timer = setTimeout(() => this.connect(), wait * 1000);
  }

  stop(user = true) {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "stopped");
    if (this.node) { this.node.port.onmessage = null; this.node.disconnect(); }
    if (this.media) this.media.getTracks().forEach((t) => t.stop());
    if (this.ctx) this.ctx.close();
    if (user) setState("idle", "stopped");
    showLevel(0, 0);
    $("start").disabled = false;
    $("stop").disabled = true;
  }
}

async function start() {
  const stream = $("stream").value.trim();
  if (!NAME_RE.test(stream) || stream.length > 128) {
    setState("error", `invalid stream name "${stream}": letters, digits, _ . - and / between parts`);
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices) {
    setState("error", "the microphone needs https or localhost: open this page over TLS (see docs/web.md)");
    return;
  }
  $("start").disabled = true;
  $("stop").disabled = false;
  session = new Session(stream, Number($("channels").value), $("processing").checked);
  try {
    await session.start();
  } catch (err) {
    session.stop(false);
    session = null;
    setState("error", `${err.name || "Error"}: ${err.message || err}`);
  }
}

function stop() {
  if (session) session.stop(true);
  session = null;
}

$("form").addEventListener("submit", (ev) => { ev.preventDefault(); start(); });
$("stop").addEventListener("click", stop);
window.addEventListener("pagehide", () => { if (session && session.ws) session.ws.close(1000, "page closed"); });

if (params.get("stream")) $("stream").value = params.get("stream");
if (params.get("channels") === "2") $("channels").value = "2";
if (params.get("processing") === "1") $("processing").checked = true;
if (params.get("autostart") === "1") start();
