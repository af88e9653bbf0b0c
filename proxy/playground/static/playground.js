// The playground: a Deepgram Voice Agent V1 client in one page, no build step.
// Microphone -> linear16 at the AudioContext's rate -> the proxy; the agent's
// binary audio -> played in order; every message -> the timeline.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_ROWS = 500;

  // Read by the browser test, and handy in the console.
  const state = {
    config: null, ws: null, ctx: null, stream: null, capture: null,
    ready: false, t0: 0, messages: 0, micRow: null, agentRow: null,
    sentFrames: 0, receivedSamples: 0, playedSamples: 0, agentAudioDone: 0, nextPlay: 0, playing: new Set(),
    turnEnd: null, waitingFirstAudio: false, latencies: [], conversation: [], errors: [],
  };
  window.playground = state;

  const show = (id, value) => { $(id).textContent = String(value); };
  const status = (text, isError = false) => {
    show("status", text);
    $("status").className = isError ? "error" : "";
  };
  const elapsed = () => Math.round(performance.now() - state.t0);

  function addRow(direction, type, detail, error = false) {
    const pane = $("events");
    const following = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 8;
    const row = document.createElement("tr");
    row.className = (direction === "→" ? "out" : "in") + (error ? " error" : "");
    for (const [text, cls] of [[elapsed(), ""], [direction, ""], [type, ""], [detail, "detail"]]) {
      const cell = document.createElement("td");
      cell.textContent = String(text);
      if (cls) cell.className = cls;
      row.append(cell);
    }
    const body = $("timeline").tBodies[0];
    body.append(row);
    while (body.rows.length > MAX_ROWS) body.deleteRow(0);
    if (following) pane.scrollTop = pane.scrollHeight;
    return row;
  }

  // Audio frames are many: one row per direction between two messages, counted as they come.
  function audioRow(direction, bytes) {
    const key = direction === "→" ? "micRow" : "agentRow";
    let row = state[key];
    if (!row || row.after !== state.messages || !row.isConnected) {
      row = addRow(direction, "audio", "");
      row.after = state.messages;
      row.frames = 0;
      row.bytes = 0;
      state[key] = row;
    }
    row.frames += 1;
    row.bytes += bytes;
    row.cells[3].textContent = `${row.frames} binary frames, ${row.bytes} bytes`;
  }

  function summary(message) {
    const { type, ...rest } = message;
    const text = JSON.stringify(rest);
    return text.length > 160 ? text.slice(0, 157) + "…" : text;
  }

  function send(message) {
    state.ws.send(JSON.stringify(message));
    state.messages += 1;
    addRow("→", message.type, summary(message));
  }

  function say(role, content) {
    state.conversation.push({ role, content });
    const item = document.createElement("li");
    item.className = role;
    item.textContent = content;
    $("conversation").append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  function settings(rate) {
    return {
      type: "Settings",
      audio: {
        input: { encoding: "linear16", sample_rate: rate },
        output: { encoding: "linear16", sample_rate: rate, container: "none" },
      },
      agent: {
        listen: { provider: { type: "deepgram", model: "nova-3" } },
        think: {
          provider: { type: "open_ai", model: "gpt-4o-mini" },
          prompt: "You are a friendly voice agent. Keep every answer to one or two short sentences.",
        },
        speak: { provider: { type: "open_ai", model: "tts-1", voice: "alloy" } },
      },
    };
  }

  // ------------------------------------------------------------ playback

  function play(buffer) {
    const count = buffer.byteLength >> 1;
    if (!count) return;
    state.receivedSamples += count;
    const pcm = new Int16Array(buffer, 0, count);
    const samples = new Float32Array(count);
    for (let i = 0; i < count; i++) samples[i] = pcm[i] / 32768;
    const ctx = state.ctx;
    const clip = ctx.createBuffer(1, count, ctx.sampleRate);
    clip.copyToChannel(samples, 0);
    const source = ctx.createBufferSource();
    source.buffer = clip;
    source.connect(ctx.destination);
    const at = Math.max(ctx.currentTime + 0.05, state.nextPlay);
    source.start(at);
    state.nextPlay = at + clip.duration;
    state.playing.add(source);
    source.onended = () => {
      if (state.playing.delete(source) && !source.cut) {
        state.playedSamples += count;
        show("played-samples", state.playedSamples);
      }
    };
  }

  // Barge-in: what is still queued is not what the user wants to hear.
  function stopPlayback() {
    for (const source of state.playing) {
      source.cut = true;
      source.stop();
    }
    state.playing.clear();
    state.nextPlay = 0;
  }

  // ------------------------------------------------------------ messages

  function onMessage(message) {
    const isError = message.type === "Error";
    state.messages += 1;
    addRow("←", message.type, summary(message), isError);
    switch (message.type) {
      case "SettingsApplied":
        state.ready = true;
        $("text").disabled = false;
        $("send").disabled = false;
        status("connected: speak, or type a message");
        break;
      case "ConversationText":
        say(message.role, message.content);
        break;
      case "UserStartedSpeaking":
        stopPlayback();
        break;
      case "UtteranceEnd":
        state.turnEnd = performance.now();
        state.waitingFirstAudio = true;
        break;
      case "AgentStartedSpeaking":
        state.latencies.push({
          total: message.total_latency, think: message.ttt_latency, speak: message.tts_latency, seen: null,
        });
        latencyRow();
        break;
      case "AgentAudioDone":
        state.agentAudioDone += 1;
        break;
      case "Error":
        state.errors.push(message);
        status(`error ${message.code}: ${message.description}`, true);
        break;
      default:
        break;
    }
  }

  function onAudio(buffer) {
    audioRow("←", buffer.byteLength);
    if (state.waitingFirstAudio && state.turnEnd !== null) {
      state.waitingFirstAudio = false;
      const last = state.latencies[state.latencies.length - 1];
      if (last) last.seen = (performance.now() - state.turnEnd) / 1000;
      latencyRow(true);
    }
    play(buffer);
  }

  function latencyRow(update = false) {
    const body = $("latencies").tBodies[0];
    const turn = state.latencies.length;
    const figures = state.latencies[turn - 1];
    const ms = (s) => (typeof s === "number" ? `${Math.round(s * 1000)} ms` : "–");
    const row = update && body.rows.length ? body.rows[body.rows.length - 1] : body.insertRow();
    row.replaceChildren();
    for (const text of [turn, ms(figures.total), ms(figures.think), ms(figures.speak), ms(figures.seen)]) {
      row.insertCell().textContent = String(text);
    }
  }

  // ------------------------------------------------------------ start / stop

  async function start() {
    const config = state.config;
    const token = $("token").value.trim();
    if (config.token_required && !token) {
      status("this proxy asks for a token: enter one, then Start", true);
      $("token").focus();
      return;
    }
    $("start").disabled = true;
    status("opening the microphone…");
    try {
      let ctx = new AudioContext();
      if (ctx.sampleRate > 48000) {
        // The proxy takes linear16 at 8000-48000 Hz; a 96 kHz device is asked for 48 kHz instead.
        await ctx.close();
        ctx = new AudioContext({ sampleRate: 48000 });
      }
      await ctx.resume();
      state.ctx = ctx;
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      state.stream = stream;
      await ctx.audioWorklet.addModule("capture-worklet.js");
      const capture = new AudioWorkletNode(ctx, "linear16-capture");
      state.capture = capture;
      // The node must be pulled by the graph to run; a silent gain keeps the mic out of the speakers.
      const mute = ctx.createGain();
      mute.gain.value = 0;
      ctx.createMediaStreamSource(stream).connect(capture).connect(mute).connect(ctx.destination);
      show("mic-rate", ctx.sampleRate);

      const url = new URL(config.path, location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      // As Deepgram's browser clients send a key: the subprotocol pair ["token", <t>].
      const ws = config.token_required ? new WebSocket(url, ["token", token]) : new WebSocket(url);
      ws.binaryType = "arraybuffer";
      state.ws = ws;
      state.t0 = performance.now();
      status("connecting…");
      ws.onopen = () => {
        addRow("←", "open", `${url.pathname} (subprotocol ${ws.protocol || "none"})`);
        send(settings(ctx.sampleRate));
      };
      ws.onmessage = (event) => {
        if (typeof event.data === "string") onMessage(JSON.parse(event.data));
        else onAudio(event.data);
      };
      ws.onclose = (event) => {
        addRow("←", "close", `${event.code} ${event.reason}`, event.code !== 1000);
        const why = event.code === 1006 && !state.ready ? " (refused: a wrong token?)" : "";
        status(`closed ${event.code} ${event.reason}${why}`, event.code !== 1000);
        teardown();
      };
      capture.port.onmessage = (event) => {
        if (!state.ready || ws.readyState !== WebSocket.OPEN) return;
        ws.send(event.data);
        state.sentFrames += 1;
        show("sent-frames", state.sentFrames);
        audioRow("→", event.data.byteLength);
      };
      $("stop").disabled = false;
    } catch (error) {
      status(`cannot start: ${error.message || error}`, true);
      teardown();
    }
  }

  function teardown() {
    state.ready = false;
    stopPlayback();
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    if (state.ctx) state.ctx.close();
    state.stream = state.ctx = state.capture = null;
    $("text").disabled = $("send").disabled = $("stop").disabled = true;
    $("start").disabled = false;
  }

  function stop() {
    if (state.ws && state.ws.readyState <= WebSocket.OPEN) state.ws.close(1000, "bye");
    else teardown();
  }

  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!state.ws || state.ws.readyState === WebSocket.CLOSED) start();
  });
  $("stop").addEventListener("click", stop);
  $("typed").addEventListener("submit", (event) => {
    event.preventDefault();
    const content = $("text").value.trim();
    if (!content || !state.ready) return;
    send({ type: "InjectUserMessage", content });
    $("text").value = "";
    state.turnEnd = performance.now();
    state.waitingFirstAudio = true;
  });

  fetch("playground.json", { cache: "no-store" })
    .then((response) => response.json())
    .then((config) => {
      state.config = config;
      const mode = $("mode");
      if (config.demo) {
        mode.classList.add("demo");
        mode.textContent = "Offline demo: the proxy's built-in fake upstream answers, not OpenAI. " +
          "It recognises no words: a spoken turn is transcribed as its length, a typed one is echoed, " +
          "and the voice is a generated waveform. Start the proxy with OPENAI_API_KEY for a real conversation.";
      } else {
        mode.textContent = "Live: this conversation goes through the proxy to the OpenAI Realtime API it is configured for.";
      }
      $("token-row").hidden = !config.token_required;
    })
    .catch((error) => status(`cannot load playground.json: ${error}`, true));
})();
