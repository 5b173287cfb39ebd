"""nlpseq-serve: the batching queue with a fake model, the app through TestClient with the tiny NER checkpoint,
and one real server process (the tiny sentiment checkpoint) for batching, the load test and SIGTERM."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx; its TestClient works with either
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient  # noqa: E402

import nlpseq  # noqa: E402
from nlpseq.errors import ConfigError, NlpseqError  # noqa: E402
from nlpseq.serve import ServedModel, ServeSettings, create_app  # noqa: E402
from nlpseq.serve_batching import BatchingSettings  # noqa: E402
from tests.conftest import compose_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NER, SENTIMENT = ROOT / "tests" / "fixtures" / "ner_v1.pt", ROOT / "tests" / "fixtures" / "sentiment_v1.pt"


# ----- the app, in process --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tagger():
    return nlpseq.load(NER, device="cpu")


def wait_ready(get, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "not ready in time"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def client(tagger):
    settings = ServeSettings(checkpoint=str(NER), max_inputs=4, max_input_chars=50, max_body_bytes=2000)
    with TestClient(create_app(lambda: tagger, settings)) as c:
        wait_ready(c.get)
        yield c


def test_predict_answers_what_the_predictor_does(client, tagger):
    texts = ["EU rejects German call to boycott British lamb .", "Peter Blackburn visited Paris"]
    response = client.post("/predict", json={"inputs": texts})
    assert response.status_code == 200
    assert response.json() == {"predictions": tagger.predict(texts)}


BAD = "body is not JSON (Expecting value at line 1 column 1); expected {\"inputs\": [...]}"


@pytest.mark.parametrize("body,status,message", [
    (b"not json", 400, BAD),
    (b'{"inputs": ["caf\xe9"]}', 400, "body is not UTF-8 text; expected JSON {\"inputs\": [...]}"),
    (b"[1, 2]", 400, "body is a list; expected a JSON object {\"inputs\": [...]}"),
    (b"{}", 400, "missing field \"inputs\"; expected {\"inputs\": [...]}"),
    (b'{"inputs": ["a"], "beam": 2}', 400, "unknown field 'beam'; the body takes only \"inputs\""),
    (b'{"inputs": "EU rejects"}', 400, "\"inputs\" is a string; expected a list"),
    (b'{"inputs": []}', 422, "\"inputs\" has 0 entries; expected 1 to 4 (max_inputs)"),
    (b'{"inputs": ["a", "b", "c", "d", "e"]}', 422, "\"inputs\" has 5 entries; expected 1 to 4 (max_inputs)"),
    (b'{"inputs": ["a", null]}', 400, "inputs[1]: null; expected a non-empty string"),
    (b'{"inputs": ["a", "b", " \\t "]}', 422, "inputs[2]: empty text; expected a non-empty string"),
    (json.dumps({"inputs": ["x" * 51]}).encode(), 422, "inputs[0]: 51 characters; at most 50 (max_input_chars)"),
    (b'{"inputs": ["\\ud800"]}', 422, "inputs[0]: not valid Unicode (an unpaired surrogate escape)"),
    (b'{"inputs": [NaN]}', 400, "body holds NaN, which is not JSON; send finite numbers"),
    (b"[" * 100000, 413, "body is 100000 bytes; at most 2000 (max_body_bytes)"),
])
def test_bad_requests_get_a_4xx_with_a_one_line_reason(client, body, status, message):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert (response.status_code, response.json()) == (status, {"error": message})
    assert client.get("/ready").status_code == 200  # and the server carries on


def test_health_info_and_unknown_routes(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.post("/predict", json={"inputs": ["EU rejects"]}).status_code == 200
    info = client.get("/info").json()
    assert info["task"] == "ner" and "O" in info["labels"] and len(info["config_sha256"]) == 64
    assert info["checkpoint"] == str(NER) and info["device"] == "cpu" and info["batching"]["max_batch_size"] == 32
    assert info["stats"]["requests"] >= 1
    assert client.get("/nowhere").json() == {"error": "GET /nowhere: Not Found"}
    assert client.get("/predict").status_code == 405


def test_ready_answers_503_until_the_model_is_loaded(tagger):
    gate = threading.Event()

    def slow_factory():
        assert gate.wait(30)
        return tagger

    try:
        with TestClient(create_app(slow_factory, ServeSettings())) as c:
            assert c.get("/health").status_code == 200
            assert (c.get("/ready").status_code, c.get("/ready").json()) == (503, {"ready": False,
                                                                                   "error": "model is loading"})
            early = c.post("/predict", json={"inputs": ["EU rejects"]})
            assert early.status_code == 503 and early.headers["retry-after"] == "1"
            assert c.get("/info").json()["task"] is None
            gate.set()
            wait_ready(c.get)
            assert c.post("/predict", json={"inputs": ["EU rejects"]}).status_code == 200
    finally:
        gate.set()


def test_any_object_with_predict_can_be_served():
    class Echo:  # like the ONNX runtime's predictors: task is a plain string
        task = "sentiment"

        def predict(self, texts: list) -> list:
            return [{"text": t} for t in texts]

    served = ServedModel(Echo())
    assert served.info == {"task": "sentiment", "labels": None, "config_sha256": None}
    assert served.text_inputs and served.mergeable and served.predict(["a"]) == [{"text": "a"}]


def test_settings_come_from_serve_yaml_and_bad_ones_name_their_key():
    cfg = compose_config(["checkpoint=x.pt", "batching.max_wait_ms=5"], name="serve")
    settings = ServeSettings.from_config(cfg, num_threads=1)
    assert settings.batching == BatchingSettings(True, 32, 5.0, 256) and settings.max_inputs == 64
    for override, key in [("batching.max_batch_size=0", "batching.max_batch_size"), ("max_inputs=2.5", "max_inputs"),
                          ("batching.max_wait_ms=-1", "batching.max_wait_ms")]:
        with pytest.raises(ConfigError, match=key):
            ServeSettings.from_config(compose_config(["checkpoint=x.pt", override], name="serve"))


def test_a_missing_serve_extra_names_the_install_command(monkeypatch):
    from nlpseq.commands import serve as command

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(NlpseqError, match=r"uvicorn is missing\): pip install 'nlpseq\[serve\]'"):
        command._import_uvicorn()


# ----- one real server process ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp_path: Path, checkpoint: Path, *overrides: str) -> tuple[subprocess.Popen, str, Path]:
    port, log = free_port(), tmp_path / "server.log"
    command = [sys.executable, "-m", "nlpseq.commands.serve", f"checkpoint={checkpoint}", f"port={port}",
               "device=cpu", *overrides]
    with open(log, "w") as f:
        process = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return process, f"http://127.0.0.1:{port}", log


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process, url, log = start(tmp_path_factory.mktemp("serve"), SENTIMENT, "batching.max_wait_ms=300")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server was not ready within 60 s"
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield process, url, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_server_predicts_and_refuses_bad_requests(server):
    _, url, _ = server
    texts = ["a gorgeous , witty , seductive movie .", "the plot is a mess"]
    response = httpx.post(f"{url}/predict", json={"inputs": texts})
    assert response.json() == {"predictions": nlpseq.load(SENTIMENT, device="cpu").predict(texts)}
    refused = httpx.post(f"{url}/predict", content=b'{"inputs": ["fine", "ok", ""]}')
    assert (refused.status_code, refused.json()) == (422, {"error": "inputs[2]: empty text; expected a non-empty "
                                                                    "string"})
    assert httpx.post(f"{url}/predict", content=b"{oops").status_code == 400
    assert httpx.get(f"{url}/health").status_code == 200


def test_server_batches_concurrent_requests(server):
    _, url, _ = server
    texts = [f"review number {i} is {'good' if i % 2 else 'bad'}" for i in range(12)]

    async def send_all():
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            return await asyncio.gather(*(c.post("/predict", json={"inputs": [t]}) for t in texts))

    for _ in range(5):  # a wave may run one by one if the model keeps up; after a merged batch, the server waits
        responses = asyncio.run(send_all())
        assert [r.status_code for r in responses] == [200] * len(texts)
        assert [r.json()["predictions"][0]["text"] for r in responses] == texts  # each got its own result
        sizes = httpx.get(f"{url}/info").json()["stats"]["batch_requests"]
        if max(int(k) for k in sizes) > 1:
            break
    assert max(int(k) for k in sizes) > 1, sizes


def test_loadtest_script_measures_the_server(server, tmp_path):
    _, url, _ = server
    spec = importlib.util.spec_from_file_location("loadtest", ROOT / "scripts" / "loadtest.py")
    loadtest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loadtest)
    assert loadtest.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and loadtest.percentile([5.0], 99) == 5.0
    (tmp_path / "inputs.txt").write_text("great fun\ndull and slow\n", encoding="utf-8")
    out = tmp_path / "rows.jsonl"
    rows = loadtest.main(["--url", url, "--inputs", str(tmp_path / "inputs.txt"), "--concurrency", "2",
                          "--seconds", "1", "--warmup", "0", "--out", str(out)])
    assert rows[0]["requests"] > 0 and rows[0]["errors"] == 0 and rows[0]["batching"] == "on"
    assert json.loads(out.read_text())["concurrency"] == 2


def test_sigterm_answers_the_requests_in_flight_and_exits_0(server):
    process, url, log = server
    before = httpx.get(f"{url}/info").json()["stats"]["requests"]
    results = []

    def send(text: str) -> None:
        results.append(httpx.post(f"{url}/predict", json={"inputs": [text]}, timeout=30).status_code)

    senders = [threading.Thread(target=send, args=(t,)) for t in ("one", "two", "three")]
    for s in senders:
        s.start()
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/info").json()["stats"]["requests"] < before + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0, log.read_text()
    for s in senders:
        s.join(10)
    assert results == [200, 200, 200]
    assert "stopped" in log.read_text()


def test_a_checkpoint_that_fails_to_load_stops_the_server_with_status_1(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    process, _, log = start(tmp_path, broken)
    assert process.wait(timeout=60) == 1
    assert f"error: model failed to load: NlpseqError: {broken} is not a loadable checkpoint" in log.read_text()


# ----- the ONNX backend ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["onnx", "auto"])
def test_the_onnx_backend_answers_as_the_torch_one(backend):
    pytest.importorskip("onnxruntime")
    from nlpseq.commands.serve import backend_factory

    texts = ["EU rejects German call .", "Peter Blackburn", "a"]
    answers = {}
    for name in (backend, "torch"):
        factory = backend_factory(name, str(NER), "cpu", False, 1)
        with TestClient(create_app(factory, ServeSettings(checkpoint=str(NER), backend=name))) as c:
            deadline = time.monotonic() + 60
            while c.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, "the model never loaded"
                time.sleep(0.05)
            answers[name] = c.post("/predict", json={"inputs": texts}).json()["predictions"]
            info = c.get("/info").json()
            assert info["task"] == "ner" and info["labels"] and len(info["config_sha256"]) == 64
            assert info["device"].startswith("onnxruntime") == (name != "torch"), info
    assert answers[backend] == answers["torch"]
