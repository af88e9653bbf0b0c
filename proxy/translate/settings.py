"""P3.7 and P4: check a client `Settings` and map it to one `session.update`."""

from __future__ import annotations

from typing import Any

import attrs

from .audio import AudioFormat, UnsupportedAudio, check_format
from ..protocol import deepgram as dg

# P4 voice row: the voices a Realtime session accepts by name.
REALTIME_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"})

DEFAULT_OUTPUT = AudioFormat("linear16", 24000)
DEFAULT_INPUT = AudioFormat("linear16", 24000)


class InvalidSettings(ValueError):
    """P3.7: the description names the field."""


@attrs.frozen
class SessionPlan:
    """What a valid Settings means for this connection."""

    input_format: AudioFormat
    output_format: AudioFormat
    instructions: str
    tools: tuple[dict[str, Any], ...]
    voice: str | None
    voice_ignored: str | None  # why the speak provider's voice was not used (P4: one Warning)
    session: dict[str, Any]  # the session.update payload
    history: tuple[dg.HistoryMessage, ...]
    greeting: str | None


def tools_from(functions: tuple[dg.Function, ...]) -> tuple[dict[str, Any], ...]:
    """P4 tools row: Deepgram-only keys (`endpoint`, `client_side`) are dropped."""
    tools = []
    for function in functions:
        tool: dict[str, Any] = {"type": "function", "name": function.name}
        if function.description is not None:
            tool["description"] = function.description
        tool["parameters"] = function.parameters if function.parameters is not None else {
            "type": "object",
            "properties": {},
        }
        tools.append(tool)
    return tuple(tools)


def voice_from(speak: dg.Speak | None) -> tuple[str | None, str | None]:
    """Return (voice, reason ignored). P4: only a Realtime voice is used."""
    if speak is None or speak.provider is None:
        return None, None
    voice = speak.provider.voice
    if isinstance(voice, str) and voice.lower() in REALTIME_VOICES:
        return voice.lower(), None
    if voice is None:
        model = speak.provider.model or "(none)"
        return None, f"speak provider has no Realtime voice (model {model}); the session's default voice is used"
    return None, f"voice {voice!r} is not a Realtime voice; the session's default voice is used"


def _is_realtime_model(model: str) -> bool:
    # A Deepgram think provider usually names a chat model (gpt-4o-mini); the
    # Realtime session only accepts Realtime models, so anything else is left
    # to the model chosen by the upstream URL (README, protocol notes).
    return "realtime" in model or model.startswith("gpt-audio")


def _transcription_language(agent: dg.Agent) -> str | None:
    language = None
    if agent.listen is not None and agent.listen.provider is not None:
        language = agent.listen.provider.language
    language = language or agent.language
    if not language or language == "multi":
        return None
    # OpenAI wants ISO-639-1 ("en"); Deepgram clients often send BCP-47 ("en-US").
    return language.split("-")[0].lower()


def plan_session(settings: dg.Settings, *, turn_detection: str, transcription_model: str) -> SessionPlan:
    """Check `settings` (P3.7) and build the session.update payload (P4)."""
    if settings.audio is None:
        raise InvalidSettings("audio is required (audio.input and audio.output)")
    try:
        input_format = (
            check_format(settings.audio.input.encoding, settings.audio.input.sample_rate, "audio.input")
            if settings.audio.input is not None
            else DEFAULT_INPUT
        )
        output = settings.audio.output
        if output is None:
            output_format = DEFAULT_OUTPUT
        else:
            if output.container not in (None, "none"):
                raise UnsupportedAudio(
                    "audio.output.container", f"{output.container!r} is not supported; use 'none' (raw audio)"
                )
            default_rate = 24000 if output.encoding == "linear16" else 8000
            output_format = check_format(
                output.encoding,
                output.sample_rate if output.sample_rate is not None else default_rate,
                "audio.output",
            )
    except UnsupportedAudio as error:
        raise InvalidSettings(str(error)) from None

    agent = settings.agent or dg.Agent()
    think = agent.think or dg.Think()
    instructions = think.prompt or ""
    for index, function in enumerate(think.functions):
        # P3.7: a function's parameters are a JSON Schema, i.e. an object; the
        # upstream would refuse the whole session.update over anything else.
        if function.parameters is not None and not isinstance(function.parameters, dict):
            raise InvalidSettings(f"agent.think.functions[{index}].parameters must be a JSON Schema object")
    tools = tools_from(think.functions)
    voice, voice_ignored = voice_from(agent.speak)

    transcription: dict[str, Any] = {"model": transcription_model}
    language = _transcription_language(agent)
    if language:
        transcription["language"] = language
    audio_input: dict[str, Any] = {
        "format": input_format.upstream_format,
        "transcription": transcription,
        "turn_detection": None if turn_detection == "none" else {"type": turn_detection},
    }
    audio_output: dict[str, Any] = {"format": output_format.upstream_format}
    if voice is not None:
        audio_output["voice"] = voice

    session: dict[str, Any] = {"type": "realtime"}
    model = think.provider.model if think.provider is not None else None
    if model and _is_realtime_model(model):
        session["model"] = model
    session["instructions"] = instructions
    if tools:
        session["tools"] = list(tools)
    session["audio"] = {"input": audio_input, "output": audio_output}
    # P4 last row: think.provider.temperature is never sent.

    return SessionPlan(
        input_format=input_format,
        output_format=output_format,
        instructions=instructions,
        tools=tools,
        voice=voice,
        voice_ignored=voice_ignored,
        session=session,
        history=agent.history,
        greeting=agent.greeting or None,
    )
