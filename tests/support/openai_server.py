"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol.

It is the LLM endpoint of the integration tests and the profile benchmark: a real socket, real HTTP,
real JSON — only the "model" is a deterministic function of the prompt, so tests can check which
profile belongs to which prompt. Failures are scripted per request number, in order:

    "429"          HTTP 429 with Retry-After: 0
    "401"          HTTP 401 (a request error that must not be retried)
    "500" / "503"  HTTP 5xx
    "timeout"      sleep ``timeout_sleep_s`` (longer than the client's timeout), then answer
    "malformed"    HTTP 200, body that is not JSON
    "wrong_shape"  HTTP 200, JSON without ``choices``

``always`` applies one behaviour to every request (e.g. a server that always answers malformed).
``die_after=N`` makes the process exit hard (os._exit) when request N+1 arrives, after letting
in-flight answers finish — a server crash mid-run. Every request is appended to ``log_path`` as
``<outcome>\t<sha256 of the user message>`` so tests count requests server-side across processes.

Run in-process (``with ChatServer(...) as server: server.base_url``) or as a process:
``python -m tests.support.openai_server --port-file F [--latency 0.05] [--die-after N] [--log L]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def answer_for(prompt: str) -> str:
    """The deterministic 'profile' for a prompt: its digest plus its first title, so tests can match them."""
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    title = next(
        (line.split(":", 1)[1].strip() for line in prompt.splitlines() if line.startswith("Title:")), ""
    )
    return f"Profile {digest[:16]}. Interested in {title or 'various items'}."


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


class ChatServer:
    def __init__(
        self,
        port: int = 0,
        latency_s: float = 0.0,
        script: list[str] | None = None,
        always: str | None = None,
        timeout_sleep_s: float = 2.0,
        die_after: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.latency_s = latency_s
        self.script = list(script or [])
        self.always = always
        self.timeout_sleep_s = timeout_sleep_s
        self.die_after = die_after
        self.log_path = log_path
        self.counts: Counter[str] = Counter()
        self.prompts: list[str] = []  # user messages of answered requests, in order
        self._lock = threading.Lock()
        self._request_no = 0
        self._answered = 0
        self._in_flight = 0
        self._dying = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def total_requests(self) -> int:
        return sum(self.counts.values())

    def _next_behaviour(self) -> tuple[int, str]:
        with self._lock:
            self._request_no += 1
            n = self._request_no
            if self.die_after is not None and self._answered >= self.die_after:
                self._dying = True
            behaviour = self.always or (self.script.pop(0) if self.script else "ok")
            self._in_flight += 1
            return n, behaviour

    def _record(self, outcome: str, prompt: str) -> None:
        with self._lock:
            self.counts[outcome] += 1
            self._in_flight -= 1
            if outcome == "ok":
                self._answered += 1
                self.prompts.append(prompt)
            if self.log_path is not None:
                with self.log_path.open("a") as log:
                    log.write(f"{outcome}\t{prompt_hash(prompt)}\n")

    def _die(self) -> None:
        """Let in-flight answers finish (bounded), then exit the process the hard way."""
        deadline = time.time() + 2.0
        while time.time() < deadline:
            with self._lock:
                if self._in_flight <= 1:
                    break
            time.sleep(0.01)
        os._exit(17)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                messages = payload.get("messages") or []
                prompt = next((m["content"] for m in messages if m.get("role") == "user"), "")
                n, behaviour = server._next_behaviour()
                if server._dying:
                    server._die()
                if server.latency_s:
                    time.sleep(server.latency_s)
                try:
                    self._answer(behaviour, prompt, payload, n)
                except (BrokenPipeError, ConnectionResetError):
                    behaviour = f"{behaviour}-client-gone"
                server._record("ok" if behaviour == "ok" else behaviour, prompt)

            def _answer(self, behaviour: str, prompt: str, payload: dict, n: int) -> None:
                if behaviour == "429":
                    self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "0"})
                elif behaviour == "401":
                    self._send(401, b'{"error": {"message": "invalid api key"}}')
                elif behaviour in {"500", "502", "503"}:
                    self._send(int(behaviour), b'{"error": {"message": "server error"}}')
                elif behaviour == "malformed":
                    self._send(200, b'{"id": "x", "choices": [ {"index": 0, "mess')
                elif behaviour == "wrong_shape":
                    self._send(
                        200, json.dumps({"id": f"r{n}", "object": "chat.completion", "data": []}).encode()
                    )
                else:
                    if behaviour == "timeout":
                        time.sleep(server.timeout_sleep_s)
                    text = answer_for(prompt)
                    body = {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": payload.get("model", "loopback"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": len(prompt) // 4,
                            "completion_tokens": len(text) // 4,
                            "total_tokens": len(prompt) // 4 + len(text) // 4,
                        },
                    }
                    self._send(200, json.dumps(body).encode())

        return Handler

    def start(self) -> ChatServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--die-after", type=int, default=None)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    server = ChatServer(port=args.port, latency_s=args.latency, die_after=args.die_after, log_path=args.log)
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.port))
    os.replace(tmp, args.port_file)
    try:
        server._httpd.serve_forever()
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
