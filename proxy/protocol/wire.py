"""Turning message models into frames, with the hot paths written out.

`input_audio_buffer.append` is most of the upstream traffic (50 a second per
talking client), so it is built as a string around the base64 instead of
going through the converter.
"""

from __future__ import annotations

import binascii
import json

from .converter import dumps
from .openai import ClientEvent, CustomClientEvent, InputAudioBufferAppend


def encode_upstream(event: ClientEvent) -> str:
    if type(event) is InputAudioBufferAppend:
        audio = binascii.b2a_base64(event.audio, newline=False).decode("ascii")
        return '{"type":"input_audio_buffer.append","event_id":"' + event.event_id + '","audio":"' + audio + '"}'
    if type(event) is CustomClientEvent:
        body = {"type": event.body["type"], **event.body, "event_id": event.event_id}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return dumps(event)


encode_client = dumps
