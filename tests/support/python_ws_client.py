"""A WebSocket client on Python's `websockets` (its sync client), for
lameduck's tests: tests/support/python_ws.rs runs it with `python -c`.

Its one argument is a plan, as JSON:

    url      the ws:// URL to connect to
    send     the messages to send once connected, in order:
             {"text": "..."} or {"binary": "<hex>"}
    receive  how many messages to wait for; null: until the server closes
    close    [code, reason] of the close frame it sends once it has them
    timeout  seconds to wait for the handshake, and for each message

It prints what it saw, a line each, in this order:

    OPEN                   the handshake succeeded (101)
    REFUSED <why>          the handshake failed: an HTTP status, a reset
    TEXT <json string>     a text message
    BINARY <hex>           a binary message
    TIMEOUT                no message came within `timeout`
    CLOSE <code> <reason>  the server's close frame, always last;
                           `CLOSE -` when the connection ended without one
"""

import json
import sys

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


def say(*words):
    # Flushed at once: if the test kills a client that hangs, the lines
    # it printed before are what the failure message shows.
    print(*words, flush=True)


def main(plan):
    try:
        with connect(
            plan["url"],
            open_timeout=plan["timeout"],
            close_timeout=plan["timeout"],
            # Loopback, never through an HTTP proxy from the environment.
            proxy=None,
            # No pings of its own: the server sees only what the plan sends.
            ping_interval=None,
            # The default offer of permessage-deflate is kept, as browsers
            # make it: the server must decline (or accept) it properly.
        ) as ws:
            say("OPEN")
            converse(ws, plan)
    except InvalidStatus as e:
        say("REFUSED", "status", e.response.status_code)
        say("CLOSE -")
    except OSError as e:
        # Refused, reset, or the handshake's `open_timeout` (TimeoutError).
        say("REFUSED", type(e).__name__, e)
        say("CLOSE -")


def converse(ws, plan):
    try:
        for message in plan["send"]:
            if "text" in message:
                ws.send(message["text"])
            else:
                ws.send(bytes.fromhex(message["binary"]))
        received = 0
        while plan["receive"] is None or received < plan["receive"]:
            message = ws.recv(timeout=plan["timeout"])
            if isinstance(message, str):
                say("TEXT", json.dumps(message))
            else:
                say("BINARY", message.hex())
            received += 1
    except TimeoutError:
        say("TIMEOUT")
    except ConnectionClosed:
        # The server closed; its frame, if it sent one, is read below.
        pass
    code, reason = plan["close"]
    # A no-op if the server has closed already.
    ws.close(code, reason)
    theirs = ws.protocol.close_rcvd
    if theirs is None:
        say("CLOSE -")
    else:
        say("CLOSE", theirs.code, theirs.reason)


main(json.loads(sys.argv[1]))
