"""The proxy's WebSocket layer (RFC 6455), in layers that show in the tree:

- `codec`: frames parsed from bytes and built into bytes, limits and
  validation; no socket, no clock, no Trio (sans-I/O, like wsproto's
  `frame_protocol.py`);
- `transport`: the small interface a WebSocket needs from the byte stream
  under it (plain TCP, or TLS), and the two transports the proxy has;
- `socket`: the Trio `WebSocket` around a codec and a transport, with its
  states and the one ordered write path;
- `opening`: the HTTP upgrade handshakes (wsproto's sans-I/O `H11Handshake`).

Nothing is imported here, so `proxy.ws.codec` stays importable without Trio.
"""
