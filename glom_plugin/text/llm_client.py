"""A bounded-concurrency chat-completions client for any OpenAI-compatible endpoint (P = LLM(M, S), §3.2).

Sync API over a thread pool: the ``openai`` SDK's sync client is thread-safe, the work is I/O bound,
and callers (the profile builders) stay plain functions. Retries are ours, not the SDK's
(``max_retries=0`` there), so that every attempt is visible and the policy is one place:
- 429, 5xx, timeouts and answers of the wrong shape: exponential backoff with jitter
  (``base * 2**attempt * U(0.5, 1.5)``, capped; a 429's Retry-After is honoured), up to ``max_retries``;
- connection refused / DNS failure: at most 2 retries, then ``LLMUnreachableError`` naming the URL —
  a dead endpoint should fail in seconds, not after minutes of backoff;
- other 4xx (bad key, unknown model): no retry, ``LLMRequestError`` with the server's message.
Each finished answer is handed to ``on_result`` at once (the builder writes it to the durable cache),
so an interrupted run never loses a finished profile.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlparse

from glom_plugin.config import ProfileConfig

MAX_BACKOFF_S = 30.0
MAX_CONNECT_RETRIES = 2


class LLMError(RuntimeError):
    """Base of every error the profile LLM path raises."""


class LLMUnreachableError(LLMError):
    """Nothing answers at the configured base URL."""


class LLMResponseError(LLMError):
    """The endpoint answered, but not in the chat-completions shape."""


class LLMRequestError(LLMError):
    """The endpoint refused the request (4xx other than 429): key, model name, payload."""


class LLMRetriesExhausted(LLMError):
    """429 / 5xx / timeouts persisted through every retry."""


@dataclass(frozen=True)
class ChatRequest:
    key: str  # the cache key; also how results are matched back
    system: str  # S_u or S_v
    prompt: str  # M_u or M_v


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int


class _Retryable(Exception):
    def __init__(self, reason: str, wait_hint: float | None = None, connect: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_hint = wait_hint
        self.connect = connect


def resolve_api_key(cfg: ProfileConfig) -> str:
    """The key from the environment variable the config names. Loopback servers usually need none."""
    key = os.environ.get(cfg.llm_api_key_env)
    if key:
        return key
    host = urlparse(cfg.llm_base_url or "").hostname or ""
    if host in {"127.0.0.1", "localhost", "::1"}:
        return "not-needed-for-loopback"
    raise LLMRequestError(
        f"environment variable {cfg.llm_api_key_env} (profiles.llm_api_key_env) is not set; "
        f"the endpoint {cfg.llm_base_url} needs an API key"
    )


class LLMClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        concurrency: int = 4,
        backoff_base_s: float = 1.0,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> None:
        from openai import OpenAI

        if concurrency < 1:
            raise ValueError("profiles.llm_concurrency must be >= 1")
        self.base_url = base_url
        self.model = model
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.backoff_base_s = backoff_base_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self._timeout_s = timeout_s
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: ProfileConfig, seed: int = 0) -> LLMClient:
        if not cfg.llm_base_url:
            raise LLMRequestError(
                "profiles.builder='llm' needs profiles.llm_base_url (an OpenAI-compatible /v1 URL)"
            )
        return cls(
            base_url=cfg.llm_base_url,
            model=cfg.llm_model,
            api_key=resolve_api_key(cfg),
            timeout_s=cfg.llm_timeout_s,
            max_retries=cfg.llm_max_retries,
            concurrency=cfg.llm_concurrency,
            backoff_base_s=cfg.llm_backoff_base_s,
            max_tokens=cfg.llm_max_tokens,
            seed=seed,
        )

    # -- one request ---------------------------------------------------------------------------------
    def _attempt(self, system: str, prompt: str) -> Completion:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
        except openai.RateLimitError as err:
            raise _Retryable("429 rate limited", _retry_after(err)) from err
        except openai.InternalServerError as err:
            raise _Retryable(f"{err.status_code} server error") from err
        except openai.APITimeoutError as err:
            raise _Retryable(f"no answer within {self._timeout_s}s") from err
        except openai.APIConnectionError as err:
            raise _Retryable(f"connection failed: {err.__cause__ or err}", connect=True) from err
        except openai.APIStatusError as err:
            raise LLMRequestError(
                f"LLM endpoint {self.base_url} refused the request: HTTP {err.status_code}: {err.message}"
            ) from err
        except (openai.APIResponseValidationError, ValueError) as err:  # JSON that is no completion / no JSON
            raise _Retryable(f"answer in the wrong shape ({type(err).__name__}: {err})") from err
        return self._validated(response)

    def _validated(self, response: object) -> Completion:
        """Check the chat-completions shape ourselves: the SDK builds objects without validating them."""
        try:
            choices = response.choices  # type: ignore[attr-defined]
            text = choices[0].message.content
        except (AttributeError, IndexError, TypeError, KeyError) as err:
            raise _Retryable(
                f"answer in the wrong shape: no choices[0].message.content ({response!r:.200})"
            ) from err
        if not isinstance(text, str) or not text.strip():
            raise _Retryable(f"answer in the wrong shape: empty or non-text content ({text!r:.100})")
        usage = getattr(response, "usage", None)
        return Completion(
            text=text.strip(),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            attempts=1,
        )

    def _backoff(self, attempt: int, hint: float | None) -> float:
        with self._rng_lock:
            jitter = self._rng.uniform(0.5, 1.5)
        delay = min(MAX_BACKOFF_S, self.backoff_base_s * (2**attempt) * jitter)
        return max(delay, hint or 0.0)

    def complete(self, system: str, prompt: str, stop: threading.Event | None = None) -> Completion:
        """One profile, with the retry policy of the module docstring."""
        attempt = 0
        connect_failures = 0
        while True:
            try:
                done = self._attempt(system, prompt)
                return Completion(done.text, done.prompt_tokens, done.completion_tokens, attempt + 1)
            except _Retryable as err:
                connect_failures += err.connect
                if err.connect and connect_failures > MAX_CONNECT_RETRIES:
                    raise LLMUnreachableError(
                        f"LLM endpoint {self.base_url} is unreachable ({err.reason}) after "
                        f"{connect_failures} attempts; check profiles.llm_base_url and that the server is up"
                    ) from err
                if attempt >= self.max_retries:
                    kind = LLMResponseError if "wrong shape" in err.reason else LLMRetriesExhausted
                    raise kind(
                        f"LLM endpoint {self.base_url} (model {self.model}): {err.reason}; "
                        f"gave up after {attempt + 1} attempts"
                    ) from err
                if stop is not None and stop.is_set():
                    raise LLMError("stopped: another request failed") from err
                time.sleep(self._backoff(attempt, err.wait_hint))
                attempt += 1

    # -- many requests -------------------------------------------------------------------------------
    def complete_many(
        self,
        requests: Sequence[ChatRequest],
        on_result: Callable[[ChatRequest, Completion], None],
        desc: str = "LLM profiles",
    ) -> dict[str, Completion]:
        """Run ``requests`` with at most ``concurrency`` in flight; ``on_result`` sees each answer as it lands.

        On the first error no new request starts, those in flight finish (and reach ``on_result``),
        then the error is raised — finished work is never lost.
        """
        from tqdm.auto import tqdm

        results: dict[str, Completion] = {}
        if not requests:
            return results
        stop = threading.Event()
        lock = threading.Lock()
        tokens = [0, 0]
        bar = tqdm(total=len(requests), desc=desc, unit="profile", dynamic_ncols=True)
        started = time.perf_counter()

        def run_one(request: ChatRequest) -> None:
            if stop.is_set():
                return
            try:
                completion = self.complete(request.system, request.prompt, stop)
                on_result(request, completion)
            except BaseException:
                stop.set()  # before this worker takes the next request
                raise
            with lock:
                results[request.key] = completion
                tokens[0] += completion.prompt_tokens
                tokens[1] += completion.completion_tokens
                bar.update(1)
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(tok_per_s=f"{(tokens[0] + tokens[1]) / elapsed:.0f}", refresh=False)

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="glom-llm")
        try:
            futures: list[Future[None]] = [pool.submit(run_one, r) for r in requests]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
                primary = next((e for e in errors if not str(e).startswith("stopped:")), errors[0])
                raise primary  # type: ignore[misc]
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        return results


def _retry_after(err: Exception) -> float | None:
    response = getattr(err, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), MAX_BACKOFF_S) if value is not None else None
    except ValueError:
        return None
