"""Load-test ``nlpseq-serve``: N concurrent clients send ``POST /predict`` for a fixed time.

    python scripts/loadtest.py --checkpoint runs/ner/checkpoints/best.pt --concurrency 1,4,16,64 --seconds 10 \\
        --batching on,off --out loadtest.jsonl

Without ``--url``, each ``--batching`` mode starts its own server (``python -m nlpseq.commands.serve``) on a free
port of 127.0.0.1, waits for ``/ready``, and stops it with SIGTERM afterwards (``--server-arg key=value`` passes
more overrides, e.g. ``num_threads=2``). With ``--url``, the running server there is measured as it is.
Inputs come from ``--inputs FILE`` (one text per line; ``.jsonl``: one JSON input per line) or the test split of
the checkpoint's corpus. Per concurrency it prints requests/s, p50/p95/p99 latency (ms, successful requests),
errors, the mean inputs per model call (from ``/info``) and this client's CPU time, which competes with the
server's when both share the machine; a markdown table at the end, and one JSON line per run to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's nlpseq, installed or not

COLUMNS = ("task", "batching", "concurrency", "requests", "rps", "p50_ms", "p95_ms", "p99_ms", "errors",
           "mean_batch_inputs", "client_cpu_s")


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending list."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))]


def read_inputs(args) -> list:
    """The inputs to send: ``--inputs FILE`` or the test split of the checkpoint's corpus, as texts."""
    if args.inputs:
        lines = [ln for ln in Path(args.inputs).read_text(encoding="utf-8").splitlines() if ln.strip()]
        return [json.loads(ln) for ln in lines] if args.inputs.endswith(".jsonl") else lines
    if not args.checkpoint:
        sys.exit("error: give --inputs FILE (or --checkpoint, whose test split is used)")
    import nlpseq

    predictor = nlpseq.load(args.checkpoint, device="cpu")
    root = args.data_root or os.environ.get("NLPSEQ_DATA")
    examples = predictor.read_examples(args.split, None, root)
    name = predictor.task.name
    if name == "ner":
        return [" ".join(e.tokens) for e in examples]
    if name == "sentiment":
        return [e.text for e in examples]
    if name == "translation":
        return [e.source for e in examples]
    sys.exit(f"error: a {name} model reads no text split: give --inputs FILE.jsonl (one JSON input per line)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, batching: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "nlpseq.commands.serve", f"checkpoint={args.checkpoint}", f"port={port}",
               f"batching.enabled={'true' if batching == 'on' else 'false'}", *args.server_arg]
    with open(log_path, "w") as log:  # the server keeps its own copy of the file descriptor
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=Path(__file__).resolve().parents[1])
    return process, f"http://127.0.0.1:{port}"


def wait_ready(url: str, process: subprocess.Popen | None, log_path: Path | None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            sys.exit(f"error: the server exited with status {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"error: {url}/ready did not answer 200 within {timeout:.0f} s")


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class RawConnection:
    """A keep-alive HTTP/1.1 connection on asyncio streams, for the load loop: httpx costs ~3 ms of CPU per
    request, which on a small machine is taken from the server being measured; this costs a tenth of it.
    It relies on what nlpseq-serve always sends: a Content-Length and no chunked body."""

    def __init__(self, url: str):
        address = httpx.URL(url)
        self.host, self.port = address.host, address.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            await self.reader.readexactly(_content_length(head))
            if "connection: close" in head:
                await self.close()
            return int(head.split(" ", 2)[1])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


def _content_length(head: str) -> int:
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    raise ValueError("response without Content-Length")


class HttpxConnection:
    def __init__(self, url: str):
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(base_url=url, limits=limits, timeout=60)

    async def post(self, path: str, body: bytes) -> int:
        response = await self.client.post(path, content=body, headers={"content-type": "application/json"})
        return response.status_code

    async def close(self) -> None:
        await self.client.aclose()


async def run_clients(url: str, inputs: list, concurrency: int, seconds: float, per_request: int,
                      client: str = "raw") -> dict:
    """``concurrency`` clients, each on its own connection, sending one request after the other for ``seconds``
    (one shared httpx pool of N connections costs several ms of CPU per request at N=64)."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    counter = itertools.count()
    deadline = time.monotonic() + seconds

    async def one_client() -> None:
        connection = RawConnection(url) if client == "raw" else HttpxConnection(url)
        try:
            while time.monotonic() < deadline:
                k = next(counter) * per_request
                body = json.dumps({"inputs": [inputs[(k + j) % len(inputs)] for j in range(per_request)]}).encode()
                start = time.perf_counter()
                try:
                    status = await connection.post("/predict", body)
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as e:
                    errors[type(e).__name__] += 1
                    continue
                if status == 200:
                    latencies.append((time.perf_counter() - start) * 1e3)
                else:
                    errors[str(status)] += 1
        finally:
            await connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {"requests": len(latencies), "elapsed_s": round(elapsed, 3), "rps": round(len(latencies) / elapsed, 1),
            **{f"p{q}_ms": _round(percentile(latencies, q)) for q in (50, 95, 99)},
            "errors": sum(errors.values()), "error_kinds": dict(errors)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def batch_inputs(url: str) -> Counter[int]:
    histogram = httpx.get(f"{url}/info", timeout=10).json()["stats"]["batch_inputs"]
    return Counter({int(k): v for k, v in histogram.items()})


def measure(url: str, inputs: list, args, batching: str) -> list[dict]:
    info = httpx.get(f"{url}/info", timeout=10).json()
    rows = []
    for concurrency in args.concurrency:
        if args.warmup > 0:
            asyncio.run(run_clients(url, inputs, concurrency, args.warmup, args.per_request, args.client))
        before, cpu = batch_inputs(url), time.process_time()
        result = asyncio.run(run_clients(url, inputs, concurrency, args.seconds, args.per_request, args.client))
        calls = batch_inputs(url) - before
        mean = sum(k * v for k, v in calls.items()) / max(1, sum(calls.values()))
        row = {"task": info["task"], "checkpoint": info["checkpoint"], "batching": batching,
               "concurrency": concurrency, "seconds": args.seconds, "inputs_per_request": args.per_request,
               **result, "mean_batch_inputs": round(mean, 2), "client_cpu_s": round(time.process_time() - cpu, 2),
               "num_threads": info["num_threads"], "settings": info["batching"], "client": args.client}
        print(" ".join(f"{k}={row[k]}" for k in COLUMNS), flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join("" if r[k] is None else str(r[k]) for k in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="checkpoint to serve (and whose test split gives the inputs)")
    parser.add_argument("--url", help="measure the server already running here instead of starting one")
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per concurrency")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each measurement")
    parser.add_argument("--batching", default="on", help="on, off or on,off (ignored with --url)")
    parser.add_argument("--inputs", help="file of inputs: one text per line, or .jsonl with one JSON input per line")
    parser.add_argument("--split", default="test", help="split of the checkpoint's corpus when no --inputs")
    parser.add_argument("--data-root", help="where corpora live (default: NLPSEQ_DATA, else the training root)")
    parser.add_argument("--per-request", type=int, default=1, help="inputs per request")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw: a lean keep-alive HTTP/1.1 client (default); httpx: httpx.AsyncClient")
    parser.add_argument("--server-arg", action="append", default=[], help="extra nlpseq-serve override key=value")
    parser.add_argument("--out", default="loadtest.jsonl", help="JSON lines written here (appended)")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.batching = [b.strip() for b in args.batching.split(",")]
    if any(b not in ("on", "off") for b in args.batching):
        parser.error("--batching takes on, off or on,off")
    if not args.url and not args.checkpoint:
        parser.error("give --checkpoint (a server is started) or --url")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    inputs = read_inputs(args)
    print(f"{len(inputs)} inputs; concurrency {args.concurrency}, {args.seconds:g} s each", flush=True)
    rows = []
    if args.url:  # the server's own batching setting is what is measured
        wait_ready(args.url, None, None)
        enabled = httpx.get(f"{args.url}/info", timeout=10).json()["batching"]["enabled"]
        args.batching = []
        rows += measure(args.url, inputs, args, "on" if enabled else "off")
    for batching in args.batching:
        log_path = Path(tempfile.mkstemp(prefix="nlpseq-serve-", suffix=".log")[1])
        process, url = start_server(args, batching, log_path)
        try:
            wait_ready(url, process, log_path)
            rows += measure(url, inputs, args, batching)
        finally:
            status = stop_server(process)
        if status != 0:
            print(f"warning: the server exited with status {status}; its log: {log_path}", file=sys.stderr)
        else:
            log_path.unlink()
    with open(args.out, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(table(rows))
    print(f"JSON lines appended to {args.out}")
    return rows


if __name__ == "__main__":
    main()
