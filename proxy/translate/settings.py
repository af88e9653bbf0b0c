"""P3.7 and P4: check a client `Settings` and map it to one `session.update`."""

from __future__ import annotations

from typing import Any

import attrs

from .audio import AudioFormat, UnsupportedAudio, check_format
from ..protocol import deepgram as dg
from .endpoint_policy import ALLOWED_METHODS, EndpointRefused, FunctionHosts

# P4 voice row: the voices a Realtime session accepts by name.
REALTIME_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"})

# P3.7: what a Settings without `audio`, or whose `audio` lacks `input` or
# `output`, gets for the missing side: linear16 at 24000 Hz, the default
# deepgram-sdk documents for an omitted input and what OpenAI speaks natively
# (no resampler). Node-proxy clients, text-only ones above all, send such
# Settings; the Node CLI sends `{"type":"Settings","agent":{"think":{"prompt":""}}}`.
DEFAULT_OUTPUT = AudioFormat("linear16", 24000)
DEFAULT_INPUT = AudioFormat("linear16", 24000)


# The Realtime session's own transcription models: a Deepgram listen model
# (nova-3, flux-general-en) has no counterpart, so the configured default is
# used for it; one of these, named by the client, is used as is.
OPENAI_TRANSCRIPTION_MODELS = frozenset(
    {
        "whisper-1",
        "gpt-transcribe",
        "gpt-live-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-mini-transcribe-2025-12-15",
        "gpt-4o-transcribe",
        "gpt-4o-transcribe-diarize",
        "gpt-realtime-whisper",
    }
)
# These take key terms as `keywords`; the others only as a free-text prompt.
KEYWORD_MODELS = frozenset({"gpt-transcribe", "gpt-live-transcribe"})
# And this one takes neither.
NO_PROMPT_MODELS = frozenset({"gpt-realtime-whisper", "gpt-4o-transcribe-diarize"})

FALLBACK_IGNORED = "FALLBACK_IGNORED"


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
    # Functions executed by the proxy (name -> endpoint), never by the client.
    server_functions: dict[str, dg.FunctionEndpoint] = attrs.field(factory=dict)
    report_history: bool = False  # Settings.flags.history: send History messages
    think_live: dg.ThinkLive | None = None
    agent_language: str | None = None  # the UpdateListen default
    # Further Warnings (code, description) to send with the session.update.
    warnings: tuple[tuple[str, str], ...] = ()


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


def _provider_name(provider: dg.Provider | None) -> str:
    return (provider.type if provider is not None else None) or "unnamed provider"


def choose_think(thinks: tuple[dg.Think, ...], field: str = "agent.think") -> tuple[dg.Think, str | None]:
    """Fallback list: the first OpenAI provider (the session runs on OpenAI), else the first.

    Returns the entry used and, when there was a list, a Warning naming the
    entries that are not (the proxy has no other LLM to fall back to).
    """
    if not thinks:
        return dg.Think(), None
    used = next((t for t in thinks if t.provider is not None and t.provider.type == "open_ai"), thinks[0])
    if len(thinks) == 1:
        return used, None
    unused = [f"{field}[{i}] ({_provider_name(t.provider)})" for i, t in enumerate(thinks) if t is not used]
    index = thinks.index(used)
    return used, (
        f"{field}[{index}] is used; {', '.join(unused)} not: the proxy has one reasoning model, OpenAI Realtime"
    )


def choose_speak(speaks: tuple[dg.Speak, ...], field: str = "agent.speak") -> tuple[str | None, str | None, str | None]:
    """Fallback list: the first entry with a Realtime voice.

    Returns (voice, reason the voice was ignored, Warning about unused entries).
    """
    if not speaks:
        return None, None, None
    chosen = next((i for i, speak in enumerate(speaks) if voice_from(speak)[0] is not None), None)
    voice, ignored = voice_from(speaks[chosen if chosen is not None else 0])
    if len(speaks) == 1 or chosen is None:
        # None usable: the one VOICE_IGNORED Warning of P4 says it all.
        return voice, ignored, None
    unused = [f"{field}[{i}] ({_provider_name(speak.provider)})" for i, speak in enumerate(speaks) if i != chosen]
    return voice, None, f"{field}[{chosen}] is used; {', '.join(unused)} not: the session speaks with one Realtime voice"


def transcription_from(
    provider: dg.ListenProvider | None, agent_language: str | None, default_model: str
) -> dict[str, Any]:
    """P4 transcription row, also for UpdateListen: model, language, key terms."""
    model = provider.model if provider is not None and provider.model in OPENAI_TRANSCRIPTION_MODELS else None
    transcription: dict[str, Any] = {"model": model or default_model}
    language = _listen_language(provider) or agent_language
    language = _iso_639_1(language)
    if language:
        transcription["language"] = language
    keyterms = [term for term in (provider.keyterms or ()) if term.strip()] if provider is not None else []
    if keyterms:
        if transcription["model"] in KEYWORD_MODELS:
            transcription["keywords"] = keyterms
        elif transcription["model"] not in NO_PROMPT_MODELS:
            # Deepgram's keyterm prompting, as the transcription model's prompt.
            transcription["prompt"] = ", ".join(keyterms)
    return transcription


def _listen_language(provider: dg.ListenProvider | None) -> str | None:
    if provider is None:
        return None
    if provider.language:
        return provider.language
    # Flux (version 2) takes hints; one hint is the language, several are left to detection.
    hints = provider.language_hints or ()
    return hints[0] if len(hints) == 1 else None


def _iso_639_1(language: str | None) -> str | None:
    if not language or language == "multi":
        return None
    # OpenAI wants ISO-639-1 ("en"); Deepgram clients often send BCP-47 ("en-US").
    return language.split("-")[0].lower()


def server_functions_from(
    functions: tuple[dg.Function, ...], hosts: FunctionHosts, field: str = "agent.think"
) -> dict[str, dg.FunctionEndpoint]:
    """Functions with an `endpoint` run in the proxy; each must pass the host allowlist (P3.7)."""
    found: dict[str, dg.FunctionEndpoint] = {}
    for index, function in enumerate(functions):
        endpoint = function.endpoint
        if endpoint is None or function.client_side is True:
            continue
        where = f"{field}.functions[{index}] ({function.name})"
        method = (endpoint.method or "POST").upper()
        if method not in ALLOWED_METHODS:
            raise InvalidSettings(f"{where}: endpoint.method {endpoint.method!r} is not one of {', '.join(ALLOWED_METHODS)}")
        try:
            hosts.check_url(endpoint.url)
        except EndpointRefused as error:
            raise InvalidSettings(f"{where}: server-side function refused: {error}") from None
        found[function.name] = endpoint
    return found


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


def plan_session(
    settings: dg.Settings,
    *,
    turn_detection: str,
    transcription_model: str,
    function_hosts: FunctionHosts = FunctionHosts(),
) -> SessionPlan:
    """Check `settings` (P3.7) and build the session.update payload (P4)."""
    audio = settings.audio or dg.SettingsAudio()  # P3.7: a missing side is DEFAULT_INPUT / DEFAULT_OUTPUT
    try:
        input_format = (
            check_format(audio.input.encoding, audio.input.sample_rate, "audio.input")
            if audio.input is not None
            else DEFAULT_INPUT
        )
        output = audio.output
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
    warnings: list[tuple[str, str]] = []
    think, think_unused = choose_think(agent.think)
    if think_unused:
        warnings.append((FALLBACK_IGNORED, think_unused))
    instructions = think.prompt or ""
    for index, function in enumerate(think.functions):
        # P3.7: a function's parameters are a JSON Schema, i.e. an object; the
        # upstream would refuse the whole session.update over anything else.
        if function.parameters is not None and not isinstance(function.parameters, dict):
            raise InvalidSettings(f"agent.think.functions[{index}].parameters must be a JSON Schema object")
    tools = tools_from(think.functions)
    server_functions = server_functions_from(think.functions, function_hosts)
    voice, voice_ignored, speak_unused = choose_speak(agent.speak)
    if speak_unused:
        warnings.append((FALLBACK_IGNORED, speak_unused))

    listen_provider = agent.listen.provider if agent.listen is not None else None
    transcription = transcription_from(listen_provider, agent.language, transcription_model)
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
        server_functions=server_functions,
        report_history=bool(settings.flags is not None and settings.flags.history),
        think_live=agent.think_live,
        agent_language=agent.language,
        warnings=tuple(warnings),
    )
