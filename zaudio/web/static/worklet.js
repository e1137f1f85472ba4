// AudioWorklet processor: gathers render quanta (128 frames) into blocks of
// `blockFrames` interleaved float32 frames and posts each block, with the
// AudioContext time of its first frame, to the page (transferring the buffer).
class ZaudioCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.channels = opts.channels || 1;
    this.blockFrames = opts.blockFrames || 1024;
    this.buf = new Float32Array(this.blockFrames * this.channels);
    this.fill = 0;
    this.t = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;  // source not connected yet
    const n = input[0].length;
    const ch = this.channels;
    for (let i = 0; i < n; i++) {
      if (this.fill === 0) this.t = currentTime + i / sampleRate;
      const base = this.fill * ch;
      for (let c = 0; c < ch; c++) {
        this.buf[base + c] = (input[c] || input[0])[i];
      }
      this.fill++;
      if (this.fill === this.blockFrames) {
        this.port.postMessage({ t: this.t, data: this.buf }, [this.buf.buffer]);
        this.buf = new Float32Array(this.blockFrames * ch);
        this.fill = 0;
      }
    }
    return true;
  }
}

registerProcessor("zaudio-capture", ZaudioCapture);
