// AudioWorklet: each 128-sample render quantum of input 0 (the microphone) and input 1
// ("PercepNet Microphone"), handed to the page as one 256-sample array (first, then second).
class TwoMicsRecorder extends AudioWorkletProcessor {
  process(inputs) {
    const a = inputs[0] && inputs[0][0], b = inputs[1] && inputs[1][0];
    if (a && b) {
      const o = new Float32Array(256);
      o.set(a, 0);
      o.set(b, 128);
      this.port.postMessage(o);
    }
    return true;
  }
}
registerProcessor("two-mics-recorder", TwoMicsRecorder);
