"""Serve a checkpoint over HTTP: ``nlpseq-serve checkpoint=PATH port=8000`` (or ``python scripts/serve.py ...``).

``POST /predict`` with ``{"inputs": ["EU rejects German call ."]}`` answers ``{"predictions": [...]}``, the
results of the predictor's ``predict`` (:mod:`nlpseq.serve`); ``GET /health``, ``GET /ready`` (200 once the
model is loaded, which happens in the background after the server starts listening) and ``GET /info``.
Requests arriving together are run as one batch (``batching.*``). SIGTERM or Ctrl+C stops the server after
the requests in progress are answered, with exit status 0. Each request is logged at debug level
(``hydra.verbose=nlpseq.serve``). Needs the ``serve`` extra: ``pip install 'nlpseq[serve]'``.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nlpseq.cli import exits_cleanly, required_checkpoint
from nlpseq.errors import ConfigError, NlpseqError, check_choice

log = logging.getLogger("nlpseq.serve")

BACKENDS = ("auto", "torch", "onnx")  # auto: onnx when the extra is installed and the task exports, else torch


@hydra.main(config_path="../conf", config_name="serve", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    checkpoint = required_checkpoint(cfg)
    if not Path(checkpoint).is_file():  # fail before listening; a file that does not load fails in the background
        raise NlpseqError(f"checkpoint {checkpoint} not found")
    check_choice("backend", cfg.backend, BACKENDS)
    uvicorn = _import_uvicorn()
    from nlpseq.serve import ServeSettings, create_app
    from nlpseq.threads import set_threads

    # One thread by default: the server runs one batch at a time, and torch's default of one thread per core
    # collapses when another process shares the cores (a GRU step went from 2.5 ms to 39 ms with 2 threads
    # while a training held one core; see nlpseq/threads.py). One thread per server degrades gracefully:
    # to use more cores, run more servers, or set num_threads=auto on a machine of its own.
    if cfg.num_threads is not None and str(cfg.num_threads) != "auto" and not _positive_int(cfg.num_threads):
        raise ConfigError(f"num_threads must be an integer >= 1, auto or null, got {cfg.num_threads!r}")
    threads = set_threads(cfg.num_threads)
    settings = ServeSettings.from_config(cfg, num_threads=threads)
    factory = backend_factory(str(cfg.backend), checkpoint, str(cfg.device), bool(cfg.quantize), threads)
    sock = _bind(str(cfg.host), int(cfg.port))
    server: uvicorn.Server | None = None

    def stop_on_failure(message: str) -> None:  # from the worker thread: uvicorn polls should_exit
        if server is not None:
            server.should_exit = True

    app = create_app(factory, settings, on_load_failure=stop_on_failure)
    host, port = sock.getsockname()[:2]
    # log_config=None keeps Hydra's logging; access_log=False: requests are logged at debug level by the app.
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None, access_log=False,
                                           timeout_graceful_shutdown=10))
    log.info("serving %s (%s) on http://%s:%d with %d torch thread(s); loading the model in the background",
             checkpoint, cfg.backend, host, port, threads)
    _serve(server, sock)
    if app.state.batcher.load_error:
        raise NlpseqError(app.state.batcher.load_error)
    log.info("stopped")


def backend_factory(backend: str, checkpoint: str, device: str, quantize: bool, threads: int) -> Callable[[], object]:
    """The loader of ``backend``; ``auto`` decides when it runs (it reads the checkpoint's task): onnx, which
    answers one sentence 2.4-2.7x faster than eager PyTorch on one thread (README, "ONNX export"), for the tasks
    it exports when onnxruntime is installed, else torch."""
    onnx, torch = onnx_factory(checkpoint, quantize, threads), torch_factory(checkpoint, device, quantize)
    if backend != "auto":
        return onnx if backend == "onnx" else torch

    def load():
        from nlpseq.checkpoint import load_checkpoint
        from nlpseq.export import EXPORTED_TASKS

        exports = load_checkpoint(checkpoint)["task"] in EXPORTED_TASKS and str(device) in ("auto", "cpu")
        return onnx() if exports and importlib.util.find_spec("onnxruntime") is not None else torch()

    return load


class OnnxServed:
    """An exported bundle's predictor behind the server, described (labels, config digest) as its checkpoint is.
    The bundle lives in a temporary folder for the life of the process."""

    def __init__(self, predictor, info: dict, folder: tempfile.TemporaryDirectory):
        self.predictor, self.info, self.folder = predictor, info, folder

    def predict(self, inputs: list) -> list:
        return self.predictor.predict(inputs)

    def serving_info(self) -> dict:
        return self.info


def onnx_factory(checkpoint: str, quantize: bool, threads: int) -> Callable[[], object]:
    """``backend=onnx``: the checkpoint exported to a bundle at load time and run by :mod:`nlpseq.onnx_runtime`
    on ``threads`` onnxruntime threads (``quantize``: int8 graphs)."""

    def load():
        import nlpseq
        import nlpseq.onnx_runtime as onnx_runtime
        from nlpseq.export import export_bundle
        from nlpseq.serve import describe

        folder = tempfile.TemporaryDirectory(prefix="nlpseq-serve-")
        export_bundle(checkpoint, Path(folder.name) / "bundle", quantize=quantize)
        predictor = onnx_runtime.load(Path(folder.name) / "bundle", threads=threads)
        info = {**describe(nlpseq.load(checkpoint)), "device": f"onnxruntime cpu{' int8' if quantize else ''}"}
        return OnnxServed(predictor, info, folder)

    return load


def torch_factory(checkpoint: str, device: str, quantize: bool) -> Callable[[], object]:
    """``backend=torch``: the predictor of ``nlpseq.load``, loaded when the server calls the factory."""

    def load():
        import nlpseq
        from nlpseq.inference import inference_device

        return nlpseq.load(checkpoint, device=inference_device(device, quantize), quantize=quantize)

    return load


def _import_uvicorn():
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise NlpseqError(f"nlpseq-serve needs FastAPI and uvicorn ({e.name} is missing): "
                          "pip install 'nlpseq[serve]'") from None
    return uvicorn


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is one clear error (port=0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise NlpseqError(f"host={host}: {e.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise NlpseqError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


def _serve(server, sock: socket.socket) -> None:
    """Run until SIGTERM / SIGINT. uvicorn shuts down gracefully on them and then raises the signal again
    with the handler that was there before; a no-op handler makes that a normal return (exit status 0) instead
    of death by the signal or a KeyboardInterrupt traceback."""
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _ignore(signum, frame) -> None:
    pass


if __name__ == "__main__":
    main()
