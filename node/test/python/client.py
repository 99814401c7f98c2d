"""A python-socketio client driven by the Node test (node/test/integration/python.test.ts).

Run with Debian's interpreter: /usr/bin/python3 client.py <url> <websocket|polling>
Commands arrive on stdin as JSON lines; everything that happens is printed as JSON lines on stdout.
The client reconnects by itself (python-socketio's own reconnection); nothing here reconnects for it.
"""
import json
import sys
import threading

import socketio

url, transport = sys.argv[1], sys.argv[2]
out_lock = threading.Lock()


def say(**msg):
    with out_lock:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


sio = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1, randomization_factor=0)
connects = 0


@sio.event
def connect():
    global connects
    connects += 1
    say(type="connect", n=connects, transport=sio.transport())


@sio.event
def disconnect():
    say(type="disconnect")


@sio.event
def connect_error(data):
    say(type="connect_error", data=str(data))


# Publications arrive with two arguments, (data, meta): a handler must take both (or *args).
@sio.on("chat")
def on_chat(data, meta):
    say(type="pub", event="chat", data=data, meta=meta)


@sio.on("switchboard:reconnect")
def on_reconnect_notice(data):
    say(type="notice", event="switchboard:reconnect", data=data)


def run(cmd):
    name = cmd["cmd"]
    if name == "subscribe":
        args = (cmd["channel"], cmd.get("opts", {}))
        if cmd.get("ack"):
            say(type="ack", id=cmd["id"], result=sio.call("subscribe", args, timeout=10))
        else:
            # No ack: the server still subscribes (a failure would come back as switchboard:error).
            sio.emit("subscribe", args)
            say(type="sent", id=cmd["id"])
    elif name == "rpc":
        say(type="ack", id=cmd["id"], result=sio.call("rpc", (cmd["method"], cmd["params"]), timeout=10))
    elif name == "exit":
        sio.disconnect()
        say(type="bye")
        sys.exit(0)


sio.connect(url, transports=[transport], wait_timeout=10)
for line in sys.stdin:
    line = line.strip()
    if line:
        try:
            run(json.loads(line))
        except SystemExit:
            raise
        except Exception as err:  # reported to the test, which fails on it
            say(type="error", message=repr(err))
