"""Hub trust: spoofed ids, files outside the entry folder, invalid ids, typed
config.json / index.json fields, bounded JSON, and downloads that time out,
are refused, fail or are too large. No test builds a model or uses the
internet: the servers are local threads on 127.0.0.1."""

import contextlib
import hashlib
import http.server
import json
import os
import pathlib
import shutil
import socket
import threading
import time
import types

import pytest

from keras_onebit import hub
from keras_onebit.errors import Error
from keras_onebit.hub import download, loading
from keras_onebit.hub import folders as registry
from keras_onebit.hub.errors import (
    ChecksumError,
    DownloadError,
    FieldError,
    HubError,
    InvalidIdError,
    PathNotFoundError,
)

SHIPPED = "wrn_20_1-mnist-1bit"  # a manifest id with a folder in pretrained/
OTHER = "wrn_20_1-cifar10-1bit"  # another shipped model: the spoof's weights
UPSTREAM = "wrn_20_10-cifar10-1bit"  # a manifest id with a URL and a .mat sha256
PROJECT = registry.pretrained_dir()  # before any test monkeypatches it


# ----------------------------------------------------------------------------- helpers


def snapshot(root):
    """{path: sha256 / "dir" / ("link", target)} of everything under `root`."""
    out = {}
    for path in sorted(pathlib.Path(root).rglob("*")):
        if path.is_symlink():
            out[str(path)] = ("link", os.readlink(path))
        elif path.is_file():
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[str(path)] = "dir"
    return out


@contextlib.contextmanager
def unchanged(*roots):
    """Asserts that no file under `roots` is added, removed or changed."""
    before = [snapshot(root) for root in roots]
    yield
    assert [snapshot(root) for root in roots] == before


def shipped_folder(model_id):
    folder = PROJECT / model_id
    if not (folder / registry.CONFIG_NAME).is_file():
        pytest.skip(f"the shipped entry {model_id} is not in {PROJECT}")
    return folder


def copy_entry(source, dest, **changes):
    """Copies the entry folder `source` to `dest`, then updates its config.json
    (a value of `...` deletes the field). Returns `dest`."""
    shutil.copytree(source, dest)
    config_path = dest / registry.CONFIG_NAME
    config = json.loads(config_path.read_text())
    for key, value in changes.items():
        if value is ...:
            config.pop(key, None)
        else:
            config[key] = value
    config_path.write_text(json.dumps(config))
    return dest


def raises(error_class, call, *texts):
    """Runs `call`, asserts it raises `error_class` (a one-line keras_onebit
    Error) whose message contains every text. Returns the error."""
    with pytest.raises(error_class) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, HubError) and isinstance(info.value, Error)
    assert "\n" not in message, message
    for text in texts:
        assert str(text) in message, (text, message)
    return info.value


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A mirror ($KERAS_ONEBIT_HUB) and a user cache in tmp_path; the project's
    real pretrained/ and manifest; no proxy, 1 s download timeout."""
    ns = types.SimpleNamespace(tmp=tmp_path, mirror=tmp_path / "mirror", cache=tmp_path / "cache")
    ns.mirror.mkdir()
    monkeypatch.setenv("KERAS_ONEBIT_HUB", str(ns.mirror))
    monkeypatch.setenv("KERAS_ONEBIT_CACHE", str(ns.cache))
    monkeypatch.setenv(download.TIMEOUT_ENV, "1")
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    return ns


@pytest.fixture
def own_manifest(env, monkeypatch):
    """`env` with a temporary project folder: write `index.json` with `env.write(entries)`."""
    env.pretrained = env.tmp / "pretrained"
    env.pretrained.mkdir()
    monkeypatch.setattr(registry, "PRETRAINED", env.pretrained)
    monkeypatch.setattr(registry, "pretrained_dir", lambda: env.pretrained)

    def write(entries):
        path = env.pretrained / registry.MANIFEST_NAME
        path.write_text(json.dumps({"format": registry.MANIFEST_FORMAT,
                                    "version": registry.MANIFEST_VERSION, "models": entries}))
        return path

    env.write = write
    return env


@pytest.fixture
def local_entry(env):
    """A valid entry `local-model` (the shipped cifar10 files) in the mirror."""
    return copy_entry(shipped_folder(OTHER), env.mirror / "local-model", id="local-model")


# ------------------------------------------------------------------------ 1. hub trust


def test_spoofed_mirror_id_is_checked_against_manifest(env):
    shipped = shipped_folder(SHIPPED)
    spoof = copy_entry(shipped_folder(OTHER), env.mirror / SHIPPED, id="x")
    expected = registry.manifest_entries()[SHIPPED]["sha256"]
    with unchanged(env.tmp, PROJECT):  # the shipped model is not replaced
        for name in (SHIPPED, spoof):  # by id, and the folder given as a path
            raises(ChecksumError, lambda n=name: hub.load(n), spoof / "weights.onebit",
                   registry.manifest_path(), expected)
    # The same with a config id that matches the folder name.
    copy_entry(shipped_folder(OTHER), env.mirror / "tmp", id=SHIPPED)
    shutil.rmtree(spoof)
    os.replace(env.mirror / "tmp", spoof)
    with unchanged(env.tmp, PROJECT):
        raises(ChecksumError, lambda: hub.load(SHIPPED), spoof / "weights.onebit", expected,
               "manifest expects")
    shutil.rmtree(spoof)
    kind, folder = hub.resolve(SHIPPED)
    config, weights = loading.verified_weights(folder, SHIPPED)
    assert weights.parent == shipped and config["weights_sha256"] == expected


def test_spoofed_cache_entry_of_a_download_is_checked(env):
    """A cache folder named as an upstream (.mat) id must be converted from the manifest's file."""
    spoof = copy_entry(shipped_folder(OTHER), env.cache / UPSTREAM, id="x")
    expected = registry.manifest_entries()[UPSTREAM]["sha256"]
    with unchanged(env.tmp):  # nothing downloaded, nothing written
        raises(ChecksumError, lambda: hub.load(UPSTREAM), spoof / "weights.onebit",
               "source.sha256", expected, registry.manifest_path())


def test_config_id_must_be_the_folder_name(env, local_entry):
    loading.verified_weights(local_entry, "local-model")  # the valid entry passes
    config = local_entry / "config.json"
    config.write_text(config.read_text().replace('"id": "local-model"', '"id": "someone-else"'))
    with unchanged(env.tmp):
        error = raises(HubError, lambda: hub.load("local-model"), config, "'id'",
                       "someone-else")
        assert "local-model" in str(error) and not isinstance(error, ChecksumError)
        loading.verified_weights(local_entry)  # as an explicit path the folder name is free
    # A shipped id whose files are right but whose config names another id.
    copy_entry(shipped_folder(SHIPPED), env.mirror / SHIPPED, id="x")
    with unchanged(env.tmp):
        error = raises(HubError, lambda: hub.load(SHIPPED), "'id'", SHIPPED)
        assert not isinstance(error, ChecksumError)


# ----------------------------------------------------------------- 3. files of an entry


@pytest.mark.parametrize("weights", ["ABSOLUTE", "../outside.onebit", "sub/weights.onebit",
                                     "..", "", ".hidden"])
def test_config_weights_must_be_a_plain_name(env, local_entry, weights):
    outside = env.tmp / "outside.onebit"
    shutil.copy(local_entry / "weights.onebit", outside)  # same bytes, same sha256
    (local_entry / "sub").mkdir()
    shutil.copy(outside, local_entry / "sub" / "weights.onebit")
    weights = str(outside) if weights == "ABSOLUTE" else weights
    config = local_entry / "config.json"
    config.write_text(config.read_text().replace('"weights": "weights.onebit"',
                                                 f'"weights": {json.dumps(weights)}'))
    with unchanged(env.tmp):
        for name in ("local-model", local_entry):
            raises(FieldError, lambda n=name: hub.load(n), config, "'weights'", repr(weights))


def test_symlink_out_of_the_entry_folder(env, local_entry):
    outside = env.tmp / "outside.onebit"
    os.replace(local_entry / "weights.onebit", outside)
    (local_entry / "weights.onebit").symlink_to(outside)  # same bytes: only the link is wrong
    with unchanged(env.tmp):
        raises(HubError, lambda: hub.load("local-model"), local_entry, "'weights'", outside,
               "outside the entry folder")
        raises(HubError, lambda: hub.load(local_entry / "weights.onebit"), "'weights'", outside)
    # config.json itself pointing out of the folder.
    (local_entry / "weights.onebit").unlink()
    os.replace(outside, local_entry / "weights.onebit")
    config_outside = env.tmp / "outside.json"
    os.replace(local_entry / "config.json", config_outside)
    (local_entry / "config.json").symlink_to(config_outside)
    with unchanged(env.tmp):
        raises(HubError, lambda: hub.load("local-model"), local_entry, "'config.json'",
               config_outside, "outside the entry folder")


def test_symlink_inside_the_folder_and_linked_folder_are_fine(env, local_entry):
    os.replace(local_entry / "weights.onebit", local_entry / "real.onebit")
    (local_entry / "weights.onebit").symlink_to("real.onebit")
    linked = env.mirror / "linked-model"
    real = pathlib.Path(shutil.move(local_entry, env.tmp / "elsewhere"))
    linked.symlink_to(real, target_is_directory=True)
    config = real / "config.json"
    config.write_text(config.read_text().replace('"id": "local-model"', '"id": "linked-model"'))
    kind, folder = hub.resolve("linked-model")
    _, weights = loading.verified_weights(folder, "linked-model")
    assert weights == linked / "weights.onebit"


# --------------------------------------------------------------------------- 2. ids


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "/nonexistent/abs"])
def test_path_like_name_that_does_not_exist(env, name):
    with unchanged(env.tmp):
        raises(PathNotFoundError, lambda: hub.load(name), name)
        with pytest.raises(FileNotFoundError):  # as before
            hub.resolve(name)


@pytest.mark.parametrize("name", ["a b", "x" * 200, "x" * 5000, "a\0b", ".hidden", "a\\b",
                                  "a:b", "é"])
def test_invalid_id(env, name):
    with unchanged(env.tmp):
        raises(InvalidIdError, lambda: hub.load(name), repr(name)[:40])
        raises(InvalidIdError, lambda: registry.find_entry_dir(name))


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "..", "."])
def test_invalid_id_never_builds_a_path(env, name):
    with unchanged(env.tmp.parent):
        raises(InvalidIdError, lambda: registry.find_entry_dir(name), repr(name))
        raises(InvalidIdError, lambda: hub.save_entry(None, env.mirror, name, "wrn_20_1", {},
                                                      "cifar10"), repr(name))


@pytest.mark.parametrize("bad_id", ["../../escaped", "a/b", "..", "/abs"])
def test_invalid_manifest_id_never_downloads(own_manifest, bad_id):
    env = own_manifest
    payload = env.tmp / "payload.onebit"
    payload.write_bytes(b"x" * 100)
    entry = {"id": bad_id, "url": payload.as_uri(), "sha256": hashlib.sha256(b"x" * 100)
             .hexdigest(), "bytes": 100, "factory": "wrn_20_1"}
    manifest = env.write([entry])
    with unchanged(env.tmp.parent):
        for call in (registry.manifest_entries, hub.list, lambda: hub.load("anything"),
                     lambda: download.download_entry(entry)):
            raises(FieldError, call, manifest, "'id'", repr(bad_id))
    assert not env.cache.exists()


# ------------------------------------------------------------------- 5. typed fields


@pytest.mark.parametrize("field, value", [
    ("weights_bytes", "abc"), ("weights_bytes", -1), ("weights_bytes", True),
    ("weights_bytes", 1.5), ("weights", None), ("weights", 5), ("weights_sha256", "abc"),
    ("weights_sha256", None), ("factory_kwargs", [1]), ("binary", "yes"), ("id", 5),
    ("id", "../x"), ("factory", 3), ("source", "x"), ("weights_sha256", ...),
])
def test_config_field_of_wrong_type(env, local_entry, field, value):
    config = local_entry / "config.json"
    data = json.loads(config.read_text())
    if value is ...:
        del data[field]
    else:
        data[field] = value
    config.write_text(json.dumps(data))
    with unchanged(env.tmp):
        for name in ("local-model", local_entry):
            error = raises(FieldError, lambda n=name: hub.load(n), config, repr(field))
            assert "missing" in str(error) or value is not ...
        raises(FieldError, lambda: hub.read_config(local_entry), repr(field))


GOOD_ENTRY = {"id": "good", "factory": "wrn_20_1", "factory_kwargs": {"classes": 10},
              "dataset": "cifar10", "binary": True, "path": "good", "sha256": "a" * 64,
              "bytes": 12}


@pytest.mark.parametrize("field, value", [
    ("bytes", "12"), ("bytes", -3), ("bytes", 1.5), ("bytes", False), ("url", 5),
    ("url", "ftp://host/x.mat"), ("url", "javascript:alert(1)"), ("url", "http://"),
    ("sha256", "12"), ("sha256", 5), ("sha256", ...), ("path", "a/b"), ("path", ".."),
    ("path", "/abs"), ("default", "yes"), ("factory_kwargs", []), ("binary", 1), ("id", 7),
    ("id", ...),
])
def test_manifest_field_of_wrong_type(own_manifest, field, value):
    env = own_manifest
    entry = dict(GOOD_ENTRY)
    if value is ...:
        del entry[field]
    else:
        entry[field] = value
    manifest = env.write([entry])
    with unchanged(env.tmp):
        error = raises(FieldError, registry.manifest_entries, manifest, repr(field))
        assert "entry 'good'" in str(error) or field == "id"
        raises(FieldError, hub.list, repr(field))
        assert registry.default_model_id() == registry.FALLBACK_DEFAULT_ID  # never raises
        with pytest.raises(FieldError):
            registry.update_manifest(entry)


def test_manifest_duplicate_id_and_good_manifest(own_manifest):
    env = own_manifest
    env.write([GOOD_ENTRY, {"url": "https://example.org/w.onebit", **GOOD_ENTRY,
                            "path": None}])
    raises(FieldError, registry.manifest_entries, "'good'", "more than once")
    env.write([GOOD_ENTRY])
    assert list(registry.manifest_entries()) == ["good"]


def test_project_manifest_passes_the_checks():
    entries = registry.manifest_entries()
    assert entries and all(registry.is_valid_id(i) for i in entries)


def test_deep_large_and_duplicate_key_json(own_manifest, local_entry):
    env = own_manifest
    config = local_entry / "config.json"
    config.write_text("[" * 200_000 + "]" * 200_000)
    raises(HubError, lambda: hub.load("local-model"), config, "nested too deeply")
    config.write_text('{"id": "local-model", "id": "x"}')
    raises(HubError, lambda: hub.load("local-model"), config, "'id' twice")
    config.write_text('{"id": ' + "1" * 5000 + "}")  # int() limit of Python >= 3.11
    raises(HubError, lambda: hub.load("local-model"), config, "unreadable")
    manifest = env.pretrained / "index.json"
    manifest.write_text('{"models": [], "pad": "' + "x" * registry.MAX_JSON_BYTES + '"}')
    raises(HubError, registry.manifest_entries, manifest, "larger than")
    manifest.write_text("{" * 100_000)
    raises(HubError, registry.manifest_entries, manifest)
    manifest.unlink()
    manifest.mkdir()
    raises(HubError, registry.manifest_entries, manifest, "not a regular file")


# ------------------------------------------------------------------------ 4. downloads


@contextlib.contextmanager
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    stop, conns = threading.Event(), []

    def run():
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conns.append(server.accept()[0])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in conns:
            conn.close()
        server.close()


@contextlib.contextmanager
def http_server(files):
    """A local HTTP server: `files` maps a URL path to (bytes, send Content-Length);
    any other path is a 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path not in files:
                self.send_error(404)
                return
            body, with_length = files[self.path]
            self.send_response(200)
            if with_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client may hang up early
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def remote_entry(env, url, body, **changes):
    """Writes a manifest with one packed entry "remote" at `url`."""
    entry = {"id": "remote", "factory": "wrn_20_1", "factory_kwargs": {"classes": 10},
             "dataset": "cifar10", "binary": True, "url": url,
             "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body), **changes}
    env.write([entry])
    return entry


def assert_nothing_left(env, before):
    """No file outside the cache changed; in the cache, no download and no entry."""
    downloads = env.cache / "downloads"
    assert not downloads.exists() or not list(downloads.iterdir())
    assert not (env.cache / "remote").exists()
    outside = {k: v for k, v in snapshot(env.tmp).items() if not k.startswith(str(env.cache))}
    assert outside == before


def test_download_timeout_on_a_server_that_never_answers(own_manifest):
    env = own_manifest
    with silent_server() as port:
        url = f"http://127.0.0.1:{port}/weights.onebit"
        remote_entry(env, url, b"payload")
        before = snapshot(env.tmp)
        start = time.monotonic()
        raises(DownloadError, lambda: hub.load("remote"), url, "KERAS_ONEBIT_HUB",
               "no answer within 1 s")
        assert time.monotonic() - start < 5
    assert_nothing_left(env, before)


def test_download_connection_refused(own_manifest):
    env = own_manifest
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/weights.onebit"
    remote_entry(env, url, b"payload")
    before = snapshot(env.tmp)
    raises(DownloadError, lambda: hub.resolve("remote"), url, "refused", "KERAS_ONEBIT_HUB")
    assert_nothing_left(env, before)


def test_download_http_404_and_mat_hint(own_manifest):
    env = own_manifest
    with http_server({}) as base:
        url = f"{base}/missing.mat"
        remote_entry(env, url, b"payload", source_format="mcdonnell-keras-mat")
        before = snapshot(env.tmp)
        raises(DownloadError, lambda: hub.load("remote"), url, "404",
               "import-mcdonnell --mat FILE --out DIR", "KERAS_ONEBIT_HUB")
    assert_nothing_left(env, before)


@pytest.mark.parametrize("with_length", [True, False])
def test_download_larger_than_the_manifest_size(own_manifest, with_length):
    env = own_manifest
    body = os.urandom(300_000)
    with http_server({"/w.onebit": (body, with_length)}) as base:
        url = f"{base}/w.onebit"
        remote_entry(env, url, body[:100], bytes=100)
        before = snapshot(env.tmp)
        raises(DownloadError, lambda: hub.resolve("remote"), url, "100 bytes expected")
    assert_nothing_left(env, before)


def test_download_with_wrong_sha256_is_not_kept(own_manifest):
    env = own_manifest
    body = b"not the file" * 100
    with http_server({"/w.onebit": (body, True)}) as base:
        url = f"{base}/w.onebit"
        remote_entry(env, url, body, sha256="0" * 64)
        before = snapshot(env.tmp)
        raises(ChecksumError, lambda: hub.resolve("remote"), url, "0" * 64,
               hashlib.sha256(body).hexdigest())
    assert_nothing_left(env, before)


def test_download_over_http_verified_into_the_cache(own_manifest):
    env = own_manifest
    body = (shipped_folder(OTHER) / "weights.onebit").read_bytes()
    with http_server({"/dir/w.onebit": (body, True)}) as base:
        remote_entry(env, f"{base}/dir/w.onebit", body)
        kind, folder = hub.resolve("remote")
    assert (kind, folder) == ("entry", env.cache / "remote")
    config, weights = loading.verified_weights(folder, "remote")
    assert weights.read_bytes() == body and config["weights_bytes"] == len(body)
    assert not list((env.cache / "downloads").iterdir())  # moved into the entry, no temp left


def test_download_name_from_a_hostile_url_stays_in_the_cache(own_manifest):
    env = own_manifest
    body = b"payload"
    with http_server({"/a/..": (body, True), "/a/%2e%2e": (body, True)}) as base:
        for path in ("/a/%2e%2e", "/a/.."):
            entry = remote_entry(env, base + path, body)
            assert download._download_name(entry) == "remote.download"
            raw = download._download(entry["url"], env.cache / "downloads" /
                                    download._download_name(entry), entry["sha256"], len(body))
            assert raw.parent == env.cache / "downloads" and raw.read_bytes() == body


def test_bad_timeout_variable(own_manifest, monkeypatch):
    env = own_manifest
    remote_entry(env, "http://127.0.0.1:9/w.onebit", b"x")
    for value in ("abc", "0", "-1", "nan", "inf"):
        monkeypatch.setenv(download.TIMEOUT_ENV, value)
        raises(HubError, lambda: hub.resolve("remote"), download.TIMEOUT_ENV, repr(value))
    assert not (env.cache / "downloads").exists() or not list(
        (env.cache / "downloads").iterdir())
