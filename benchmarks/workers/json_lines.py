"""The child's side of the JSON-lines protocol that the benchmark child processes speak
(alone_child.py, numpy_child.py): a request a line in, a reply a line out."""

import json


def replier(stream):
    """say(message): one reply, as a line of JSON on stream, flushed at once."""
    def say(message):
        stream.write(json.dumps(message) + "\n")
        stream.flush()
    return say


def serve(lines, handlers, say):
    """Answers each request line with handlers[request["op"]](request) until {"op": "quit"} or the
    end of the input. An unknown op, or a handler's exception, is answered {"error": "..."}, which
    the parent reports as the competitor's ERROR."""
    for line in lines:
        try:
            request = json.loads(line)
            if request["op"] == "quit":
                return
            handler = handlers.get(request["op"])
            say(handler(request) if handler else {"error": f"unknown op {request['op']!r}"})
        except Exception as error:
            say({"error": f"{type(error).__name__}: {error}"})
