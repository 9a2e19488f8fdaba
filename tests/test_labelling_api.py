"""The labelling page's HTTP API: every endpoint, and what it refuses."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from agents.labelling.server import MAX_BODY_BYTES, TOKEN_HEADER, check_host, make_app
from rewards.preference_store import PreferenceStore
from tests.labelling_helpers import TOKEN, posted_queue, segments

AUTH = {TOKEN_HEADER: TOKEN}


@pytest.fixture
def queue(tmp_path):
    return posted_queue(tmp_path, count=4, meta={"budget": 50, "asked_before": 10})


@pytest.fixture
def client(queue):
    return TestClient(make_app(queue, TOKEN, labeller="tester"))


def test_the_page_and_its_files_are_served_with_the_token(client):
    page = client.get(f"/?token={TOKEN}")
    assert page.status_code == 200 and "Which clip" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from the internet
    assert page.cookies.get("vmalign-token") == TOKEN  # the page's own requests carry it
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, kind in [("app.js", "javascript"), ("style.css", "css")]:
        response = client.get(f"/static/{name}")  # the cookie from above
        assert response.status_code == 200 and kind in response.headers["content-type"]


def test_state_hands_out_a_pending_pair_and_the_progress(client):
    state = client.get("/api/state?client=tab1", headers=AUTH).json()
    assert state["pair"] == {"round": 0, "query": 0, "instruction": "reach the red ball 0",
                             "steps": 4, "height": 8, "width": 8}
    assert state["progress"] == {"round": 0, "count": 4, "labelled": 0, "skipped": 0,
                                 "pending": 4, "closed": False, "budget": 50,
                                 "asked_before": 10}
    assert state["labeller"] == "tester"
    # Another tab gets another pair; the first tab keeps its own.
    assert client.get("/api/state?client=tab2", headers=AUTH).json()["pair"]["query"] == 1
    assert client.get("/api/state?client=tab1", headers=AUTH).json()["pair"]["query"] == 0


def test_a_clip_is_the_segment_as_a_strip_of_frames(client):
    response = client.get("/api/clip/0/2/b", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    strip = np.asarray(Image.open(io.BytesIO(response.content)))
    _, frames_b = segments(4)
    np.testing.assert_array_equal(strip, np.concatenate(list(frames_b[2]), axis=1))


def test_label_and_undo_change_the_store(client, queue):
    reply = client.post("/api/label", headers=AUTH,
                        json={"round": 0, "query": 1, "label": "right", "labeller": "ada"})
    assert reply.status_code == 200 and reply.json()["progress"]["labelled"] == 1
    records = PreferenceStore(queue.store.folder).records()
    assert [(r["label"], r["source"], r["meta"]["labeller"]) for r in records] == [
        (0.0, "human", "ada")]
    client.post("/api/label", headers=AUTH, json={"round": 0, "query": 2, "label": "left"})
    assert PreferenceStore(queue.store.folder).records()[-1]["meta"]["labeller"] == "tester"
    undone = client.post("/api/undo", headers=AUTH, json={"round": 0, "query": 1})
    assert undone.status_code == 200 and undone.json()["progress"]["pending"] == 3
    assert [r["label"] for r in PreferenceStore(queue.store.folder).records()] == [1.0]


def test_a_closed_round_leaves_nothing_to_label(client, queue):
    queue.close(0)
    state = client.get("/api/state", headers=AUTH).json()
    assert state["pair"] is None and state["progress"] is None
    reply = client.post("/api/label", headers=AUTH, json={"round": 0, "query": 0, "label": "left"})
    assert reply.status_code == 409 and "closed" in reply.json()["detail"]


@pytest.mark.parametrize("method, path, body", [
    ("get", "/", None), ("get", "/static/app.js", None), ("get", "/api/state", None),
    ("get", "/api/clip/0/0/a", None),
    ("post", "/api/label", {"round": 0, "query": 0, "label": "left"}),
    ("post", "/api/undo", {"round": 0, "query": 0}),
])
@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef", TOKEN[:-1]])
def test_every_endpoint_needs_the_token(client, queue, method, path, body, token):
    headers = {} if token is None else {TOKEN_HEADER: token}
    response = getattr(client, method)(path, headers=headers,
                                       **({} if body is None else {"json": body}))
    assert response.status_code == 403 and "token" in response.json()["detail"]
    assert len(queue.store) == 0


def test_the_token_also_works_as_a_query_parameter(client):
    assert client.get(f"/api/state?token={TOKEN}").status_code == 200
    assert client.get(f"/api/state?token={TOKEN}x").status_code == 403


@pytest.mark.parametrize("body, status, words", [
    ({"round": 0, "query": 9, "label": "left"}, 404, "pairs 0..3"),
    ({"round": 7, "query": 0, "label": "left"}, 404, "round 7 does not exist"),
    ({"round": 0, "query": 0, "label": "better"}, 422, "left"),
    ({"round": 0, "query": 0, "label": 1}, 422, "left"),
    ({"round": 0, "query": -1, "label": "left"}, 422, "greater than or equal"),
    ({"round": 0, "query": 0, "label": "left", "extra": 1}, 422, "extra"),
    ({"round": 0, "query": 0, "label": "left", "labeller": "../../etc/passwd"}, 422, "pattern"),
    ({"round": "0; rm -rf", "query": 0, "label": "left"}, 422, "integer"),
    ({"query": 0, "label": "left"}, 422, "missing"),
])
def test_bad_labels_get_a_4xx_that_says_why_and_store_nothing(client, queue, body, status,
                                                             words):
    response = client.post("/api/label", headers=AUTH, json=body)
    assert response.status_code == status
    assert words in json.dumps(response.json()["detail"])
    assert len(queue.store) == 0


def test_an_answered_pair_is_refused(client, queue):
    body = {"round": 0, "query": 0, "label": "left"}
    assert client.post("/api/label", headers=AUTH, json=body).status_code == 200
    second = client.post("/api/label", headers=AUTH, json={**body, "label": "right"})
    assert second.status_code == 409 and "answered already" in second.json()["detail"]
    nothing = client.post("/api/undo", headers=AUTH, json={"round": 0, "query": 3})
    assert nothing.status_code == 409 and "no answer" in nothing.json()["detail"]
    assert len(queue.store) == 1


def test_an_oversized_or_unmeasured_body_is_refused_unread(client, queue):
    big = json.dumps({"round": 0, "query": 0, "label": "left",
                      "labeller": "a" * MAX_BODY_BYTES})
    response = client.post("/api/label", headers={**AUTH, "Content-Type": "application/json"},
                           content=big)
    assert response.status_code == 413
    chunked = client.post("/api/label", headers={**AUTH, "Content-Type": "application/json"},
                          content=iter([b'{"round": 0, "query": 0, "label": "left"}']))
    assert chunked.status_code == 411
    assert len(queue.store) == 0


@pytest.mark.parametrize("path", [
    "/api/clip/..%2F..%2Fpreferences/0/a", "/api/clip/0/0/..%2F..%2Fstore.json",
    "/api/clip/0/0/../../../etc/passwd", "/api/clip/-1/0/a", "/api/clip/0/0/c",
    "/static/..%2Fserver.py", "/static/../server.py", "/static/index.html%00.js",
    "/api/clip/0/99/a",
])
def test_path_traversal_gets_nothing_from_disk(client, path):
    response = client.get(path, headers=AUTH)
    assert response.status_code in (404, 422)
    assert b"import" not in response.content and b"frame_shape" not in response.content


def test_cross_origin_requests_are_refused(client, queue):
    body = {"round": 0, "query": 0, "label": "left"}
    evil = client.post("/api/label", json=body,
                       headers={**AUTH, "Origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-origin" in evil.json()["detail"]
    site = client.get("/api/state", headers={**AUTH, "Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
    assert "access-control-allow-origin" not in {k.lower() for k in evil.headers}
    same = client.post("/api/label", json=body, headers={**AUTH, "Origin": "http://testserver"})
    assert same.status_code == 200 and len(queue.store) == 1


def test_only_loopback_binds_without_allow_remote():
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_host(host, allow_remote=False)
    with pytest.raises(ValueError, match="--allow-remote"):
        check_host("0.0.0.0", allow_remote=False)
    check_host("0.0.0.0", allow_remote=True)
    with pytest.raises(ValueError, match="at least 16"):
        make_app(None, "short")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10) | st.floats(allow_nan=False, allow_infinity=False) |
    st.sampled_from(["left", "right", "equal", "skip", "LEFT", "", "../x", "\x00"]) |
    st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=8)
BODIES = st.one_of(
    st.fixed_dictionaries({"round": JSON_VALUES, "query": JSON_VALUES, "label": JSON_VALUES},
                          optional={"labeller": JSON_VALUES, "other": JSON_VALUES}),
    st.fixed_dictionaries({"round": st.integers(-1, 2), "query": st.integers(-1, 5),
                           "label": st.sampled_from(["left", "right", "equal", "skip", "x"])}),
    JSON_VALUES)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(BODIES, min_size=1, max_size=6))
def test_fuzzed_labels_never_corrupt_the_store(tmp_path_factory, bodies):
    run = tmp_path_factory.mktemp("fuzz")
    queue = posted_queue(run, count=4)
    client = TestClient(make_app(queue, TOKEN))
    for body in bodies:
        response = client.post("/api/label", headers=AUTH, json=body)
        assert response.status_code in (200, 404, 409, 422), response.text
    store = PreferenceStore(run / "preferences")  # loads: index, batches and header whole
    pairs = store.load_all()
    queries = [r["meta"]["pending_query"] for r in store.records()]
    assert len(queries) == len(set(queries)) <= 4  # one label per pair at most
    assert set(pairs.labels.tolist()) <= {0.0, 0.5, 1.0}
    if queries:
        np.testing.assert_array_equal(pairs.frames_a, segments(4)[0][queries])
    assert queue.progress(0).labelled == len(queries)
