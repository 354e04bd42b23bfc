// AudioWorklet: hands every 128-sample render quantum of the first channel to the page.
class Recorder extends AudioWorkletProcessor {
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) this.port.postMessage(new Float32Array(ch));
    return true;
  }
}
registerProcessor("recorder", Recorder);
