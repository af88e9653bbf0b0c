"""CPU cost of the audio converters per session-minute (issue 4).

Runs the proxy's own InboundStream / OutboundStream over one minute of audio
cut into the frames real clients send (20 ms; 8192-byte frames for the
browser case) and reports the CPU time it took, so a resampled session can be
set against a pass-through one. With --qualities it also compares libsoxr's
presets: cost, and the delay the streaming filter adds (how much audio it
holds back between frames), which is what RESAMPLER_QUALITY trades.

    .venv/bin/python bench/resample_cost.py
    .venv/bin/python bench/resample_cost.py --qualities QQ LQ MQ HQ VHQ --repeat 7

Timing is CPU time of this process (time.process_time), best of --repeat runs,
so other load on the machine inflates it less than wall time would.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.translate import audio  # noqa: E402
from proxy.translate.audio import AudioFormat, InboundStream, OutboundStream  # noqa: E402

SESSION_SECONDS = 60

# (label, direction, client encoding, client rate, frame bytes on the client side or None for 20 ms)
CASES = [
    ("in  linear16 24000 pass-through", "in", "linear16", 24000, None),
    ("in  linear16 16000 -> 24000", "in", "linear16", 16000, None),
    ("in  linear16 44100 -> 24000 (8192 B)", "in", "linear16", 44100, 8192),
    ("in  linear16 48000 -> 24000", "in", "linear16", 48000, None),
    ("in  linear16  8000 -> 24000", "in", "linear16", 8000, None),
    ("in  mulaw     8000 pass-through", "in", "mulaw", 8000, None),
    ("out linear16 24000 pass-through", "out", "linear16", 24000, None),
    ("out linear16 24000 -> 16000", "out", "linear16", 16000, None),
    ("out linear16 24000 -> 48000", "out", "linear16", 48000, None),
    ("out linear16 24000 ->  8000", "out", "linear16", 8000, None),
]


def speech_like(rate: int, seconds: float, bytes_per_sample: int) -> bytes:
    """Noise shaped roughly like speech level; only its length matters to the cost."""
    rng = np.random.default_rng(4)
    if bytes_per_sample == 1:
        return rng.integers(0, 256, size=int(rate * seconds), dtype=np.uint8).tobytes()
    return np.clip(rng.normal(0, 3000, size=int(rate * seconds)), -32768, 32767).astype("<i2").tobytes()


def frames_for(direction: str, encoding: str, rate: int, frame_bytes: int | None) -> list[bytes]:
    bytes_per_sample = 2 if encoding == "linear16" else 1
    # Upstream deltas are always 24 kHz PCM16 (or G.711); the client side is at its own rate.
    source_rate = rate if direction == "in" else (24000 if encoding == "linear16" else rate)
    data = speech_like(source_rate, SESSION_SECONDS, bytes_per_sample)
    size = frame_bytes or source_rate * bytes_per_sample // 50
    return [data[start : start + size] for start in range(0, len(data), size)]


def cost_per_minute(direction: str, fmt: AudioFormat, frames: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        stream = InboundStream(fmt) if direction == "in" else OutboundStream(fmt)
        for frame in frames:
            stream.feed(frame)
        stream.flush()
        best = min(best, time.process_time() - started)
    return best


def held_back_ms(direction: str, fmt: AudioFormat, frames: list[bytes]) -> tuple[float, float]:
    """Mean and worst audio the stream holds back after a frame, in ms of output."""
    stream = InboundStream(fmt) if direction == "in" else OutboundStream(fmt)
    in_rate, out_rate = (fmt.sample_rate, 24000) if direction == "in" else (24000, fmt.sample_rate)
    fed = given = 0
    held = []
    for frame in frames:
        fed += len(frame) // 2
        given += len(stream.feed(frame)) // 2
        held.append((fed * out_rate / in_rate - given) / out_rate * 1000)
    return float(np.mean(held)), float(np.max(held))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the best is reported")
    parser.add_argument("--qualities", nargs="*", default=None, help="libsoxr presets to compare (default: the proxy's)")
    parser.add_argument("--json", action="store_true", help="print results as JSON lines")
    args = parser.parse_args()

    qualities = args.qualities or [audio.RESAMPLER_QUALITY]
    frames = {case: frames_for(*case[1:]) for case in CASES}
    if not args.json:
        print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu'}; "
              f"{SESSION_SECONDS} s of audio per case, best of {args.repeat}")
        print(f"{'case':40} {'quality':7} {'CPU ms/session-min':>19} {'% of a core':>12} {'held ms mean/max':>17}")
    for quality in qualities:
        audio.RESAMPLER_QUALITY = quality
        for case in CASES:
            label, direction, encoding, rate, _ = case
            fmt = AudioFormat(encoding, rate)
            if not fmt.resampled and quality != qualities[0]:
                continue  # pass-through does not depend on the preset
            cpu = cost_per_minute(direction, fmt, frames[case], args.repeat)
            held = held_back_ms(direction, fmt, frames[case]) if fmt.resampled else (0.0, 0.0)
            row = {"case": label.strip(), "quality": quality if fmt.resampled else "-",
                   "cpu_ms_per_session_minute": round(cpu * 1000, 2),
                   "percent_of_core": round(cpu / SESSION_SECONDS * 100, 4),
                   "held_ms_mean": round(held[0], 1), "held_ms_max": round(held[1], 1)}
            if args.json:
                print(json.dumps(row))
            else:
                print(f"{label:40} {row['quality']:7} {row['cpu_ms_per_session_minute']:19.1f} "
                      f"{row['percent_of_core']:12.4f} {held[0]:8.1f}/{held[1]:<8.1f}")


if __name__ == "__main__":
    main()
