#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub, for tests (standard library only).

It serves fake model repos from a folder, speaking the part of the Hub protocol
that airllm.c and huggingface_hub use to download a snapshot:

  GET  /api/models/{org}/{name}[/revision/{rev}]   model info: sha, siblings
  GET  /api/models/{org}/{name}/tree/{rev}[/path]  file listing (recursive)
  HEAD /{org}/{name}/resolve/{rev}/{path}           metadata in headers
  GET  /{org}/{name}/resolve/{rev}/{path}           file body (Range supported)

Repos are folders ROOT/{org}/{name}/. An optional ROOT/{org}/{name}/.hubrepo.json
sets {"gated": true, "token": "...", "aliases": ["org/old"], "branches": ["v1"],
"weak_etag": true}. Every repo has one commit, whose sha is derived from its
contents; "main", the listed branches and the sha itself all resolve to it.

Large files (*.safetensors, *.bin, *.gguf, *.onnx, *.pth, *.pt, *.msgpack, *.h5)
behave like LFS files: HEAD/GET on resolve answer 302 with X-Linked-Etag (the
sha256), X-Linked-Size and a Location on a second "CDN" port, which serves the
blob and refuses requests that carry an Authorization header (like signed
storage urls). Other files are served directly with their git blob id as ETag.
Aliased (renamed) repos answer 307 with a relative Location (API and resolve),
like the Hub.

Errors carry X-Error-Code like the Hub: RepoNotFound, RevisionNotFound,
EntryNotFound (404), GatedRepo (401 without a token), and 401 with
X-Error-Message "Invalid credentials in Authorization header" for a wrong token.

Test control (on the hub port):
  GET /_test/log          JSON list of requests served so far
  GET /_test/reset        clear the log and the injected failures
  GET /_test/inject?mode=M&match=SUBSTR[&count=N][&method=GET]
      make the next N requests whose path contains SUBSTR fail with mode M
      (CDN paths are /cdn/{sha256}/{file name}, so a file name matches both;
      body modes only apply where a body is served):
        500          answer HTTP 500
        503          answer HTTP 503 with Retry-After: 1
        drop         send the headers and half of the body, then close
        corrupt      send the body with one byte flipped
        ignore-range answer 200 with the whole body despite a Range header
        ignore-range-drop  both: 200 with the whole body, closed half way
        stall        honour the Range, send the first STALL_BYTES of the body (at
                     most half of it, at least one byte), then hold the connection
                     open without sending (STALL_S)
        lie          like stall, but announce a Content-Length of 10 GB
  GET /_test/info         {"port": ..., "cdn_port": ...}
The same injections can be given at start-up: --inject MODE:SUBSTR[:COUNT].

Usage: server.py --root DIR [--port 0] [--exit-on-stdin-eof] [--verbose]
The first line on stdout is the hub port (chosen by the OS with --port 0).
"""

import argparse
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".onnx", ".pth", ".pt", ".msgpack", ".h5")
SETTINGS_FILE = ".hubrepo.json"
ERROR_MODES = ("500", "503")
BODY_MODES = ("drop", "corrupt", "ignore-range", "ignore-range-drop", "stall", "lie")
STALL_S = 60  # how long a stalled transfer is held open (the client gives up first)
STALL_BYTES = 2048
LIE_LENGTH = 10 * 1024**3


class Repo:
    """One fake repo: its files, their ids and the commit sha."""

    def __init__(self, repo_id, folder, settings):
        self.id = repo_id
        self.folder = folder
        self.settings = settings
        self.files = {}  # path -> dict(size, oid, sha256, lfs, pointer_oid)
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, folder).replace(os.sep, "/")
                if rel == SETTINGS_FILE:
                    continue
                with open(full, "rb") as f:
                    data = f.read()
                info = {
                    "full": full,
                    "size": len(data),
                    "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "lfs": rel.endswith(LFS_SUFFIXES),
                }
                if info["lfs"]:
                    pointer = (
                        "version https://git-lfs.github.com/spec/v1\n"
                        f"oid sha256:{info['sha256']}\nsize {len(data)}\n"
                    ).encode()
                    info["pointer_size"] = len(pointer)
                    info["oid"] = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
                self.files[rel] = info
        listing = "".join(f"{p}:{i['oid']}\n" for p, i in sorted(self.files.items()))
        self.sha = hashlib.sha1((repo_id + "\n" + listing).encode()).hexdigest()

    def has_revision(self, rev):
        return rev in ("main", self.sha) or rev in self.settings.get("branches", [])


class State:
    def __init__(self, root):
        self.root = root
        self.lock = threading.Lock()
        self.log = []
        self.injections = []  # dicts: mode, match, count, method
        self.port = 0
        self.cdn_port = 0
        self._repos = {}

    def repo(self, repo_id):
        """Looks up a repo (re-reading it if its folder changed); None if unknown."""
        folder = os.path.join(self.root, *repo_id.split("/"))
        if not os.path.isdir(folder) or ".." in repo_id.split("/"):
            return None
        settings_path = os.path.join(folder, SETTINGS_FILE)
        settings = {}
        if os.path.exists(settings_path):
            with open(settings_path) as f:
                settings = json.load(f)
        stamp = []
        for dirpath, _, filenames in os.walk(folder):
            for fn in filenames:
                st = os.stat(os.path.join(dirpath, fn))
                stamp.append((dirpath, fn, st.st_size, st.st_mtime_ns))
        stamp = tuple(sorted(stamp))
        with self.lock:
            cached = self._repos.get(repo_id)
            if cached and cached[0] == stamp:
                return cached[1]
        r = Repo(repo_id, folder, settings)
        with self.lock:
            self._repos[repo_id] = (stamp, r)
        return r

    def alias_target(self, repo_id):
        """Canonical id of a renamed repo, from the aliases of all repos."""
        for org in sorted(os.listdir(self.root)):
            orgdir = os.path.join(self.root, org)
            if not os.path.isdir(orgdir):
                continue
            for name in sorted(os.listdir(orgdir)):
                sp = os.path.join(orgdir, name, SETTINGS_FILE)
                if os.path.exists(sp):
                    with open(sp) as f:
                        if repo_id in json.load(f).get("aliases", []):
                            return f"{org}/{name}"
        return None

    def blob(self, sha256):
        for org in os.listdir(self.root):
            orgdir = os.path.join(self.root, org)
            if not os.path.isdir(orgdir):
                continue
            for name in os.listdir(orgdir):
                r = self.repo(f"{org}/{name}")
                if r:
                    for info in r.files.values():
                        if info["sha256"] == sha256:
                            return info
        return None

    def take_injection(self, method, path, modes):
        """Consumes one injected failure applicable here (mode in `modes`)."""
        with self.lock:
            for inj in self.injections:
                if (inj["count"] > 0 and inj["mode"] in modes and inj["match"] in path
                        and inj["method"] in ("", method)):
                    inj["count"] -= 1
                    return inj["mode"]
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    state = None  # set on the subclass
    is_cdn = False
    verbose = False

    # ------------------------------------------------------------------ utils
    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("hubserver: " + (fmt % args) + "\n")

    def record(self, status):
        if self.path.startswith("/_test/"):
            return
        entry = {
            "method": self.command,
            "path": self.path,
            "port": "cdn" if self.is_cdn else "hub",
            "auth": "Authorization" in self.headers,
            "range": self.headers.get("Range"),
            "status": status,
        }
        with self.state.lock:
            self.state.log.append(entry)

    def reply(self, status, body=b"", headers=None, content_type="application/json"):
        self.record(status)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if content_type and body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status, code, message, extra=None):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        headers.update(extra or {})
        self.reply(status, json.dumps({"error": message}).encode(), headers)

    def send_file(self, info, headers, mode):
        """Body of a file with Range support and the injected failure `mode`."""
        size = info["size"]
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        status = 200
        if rng and mode not in ("ignore-range", "ignore-range-drop"):
            try:
                unit, spec = rng.split("=", 1)
                a, b = spec.split("-", 1)
                start = int(a)
                end = int(b) if b else size - 1
                if unit.strip() != "bytes" or start > end:
                    raise ValueError
            except ValueError:
                return self.error(400, None, f"bad Range header {rng!r}")
            if start >= size:
                self.record(416)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            end = min(end, size - 1)
            status = 206
        with open(info["full"], "rb") as f:
            f.seek(start)
            body = f.read(end - start + 1) if size else b""
        if mode == "corrupt" and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.record(status)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(LIE_LENGTH if mode == "lie" else len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if mode in ("stall", "lie"):
            self.wfile.write(body[: max(1, min(STALL_BYTES, len(body) // 2))])
            self.wfile.flush()
            time.sleep(STALL_S)
            self.close_connection = True
            return
        if mode in ("drop", "ignore-range-drop"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    # --------------------------------------------------------------- routing
    def do_HEAD(self):
        self.route()

    def do_GET(self):
        self.route()

    def route(self):
        try:
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            if self.is_cdn:
                return self.cdn(path)
            if path.startswith("/_test/"):
                return self.control(path, urllib.parse.parse_qs(url.query))
            mode = self.state.take_injection(self.command, path, ERROR_MODES)
            if mode:
                extra = {"Retry-After": "1"} if mode == "503" else {}
                return self.error(int(mode), None, "injected failure", extra)
            if path.startswith("/api/models/"):
                return self.api(path[len("/api/models/"):])
            parts = path.lstrip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id = f"{parts[0]}/{parts[1]}"
                rev = urllib.parse.unquote(parts[3])
                file_path = urllib.parse.unquote("/".join(parts[4:]))
                return self.resolve(repo_id, rev, file_path)
            return self.error(404, None, "not found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def control(self, path, q):
        if path == "/_test/log":
            with self.state.lock:
                body = json.dumps(self.state.log).encode()
            return self.reply(200, body)
        if path == "/_test/reset":
            with self.state.lock:
                self.state.log.clear()
                self.state.injections.clear()
            return self.reply(200, b"{}")
        if path == "/_test/inject":
            inj = {
                "mode": q.get("mode", ["500"])[0],
                "match": q.get("match", [""])[0],
                "count": int(q.get("count", ["1"])[0]),
                "method": q.get("method", [""])[0],
            }
            with self.state.lock:
                self.state.injections.append(inj)
            return self.reply(200, b"{}")
        if path == "/_test/info":
            body = json.dumps({"port": self.state.port, "cdn_port": self.state.cdn_port}).encode()
            return self.reply(200, body)
        return self.error(404, None, "unknown control path")

    def gate(self, repo):
        """None if the request may read `repo`, else after answering an error."""
        if not repo.settings.get("gated"):
            return None
        auth = self.headers.get("Authorization", "")
        if not auth:
            self.error(401, "GatedRepo",
                       f"Access to model {repo.id} is restricted. You must have access to it and "
                       "be authenticated to access it. Please log in.",
                       {"X-Repo-Commit": repo.sha})
            return True
        if auth != "Bearer " + repo.settings.get("token", ""):
            self.error(401, None, "Invalid credentials in Authorization header")
            return True
        return None

    def api(self, rest):
        parts = rest.split("/")
        if len(parts) < 2:
            return self.error(404, "RepoNotFound", "Repository not found")
        repo_id = f"{parts[0]}/{parts[1]}"
        repo = self.state.repo(repo_id)
        if repo is None:
            target = self.state.alias_target(repo_id)
            if target:
                rest = "/".join(parts[2:])
                return self.reply(307, b"", {"Location": f"/api/models/{target}/{rest}".rstrip("/")})
            return self.error(404, "RepoNotFound", "Repository not found")
        kind = parts[2] if len(parts) > 2 else "revision"
        rev = urllib.parse.unquote(parts[3]) if len(parts) > 3 else "main"
        if not repo.has_revision(rev):
            return self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        if kind == "revision":
            info = {
                "_id": repo.sha[:24],
                "id": repo.id,
                "modelId": repo.id,
                "sha": repo.sha,
                "private": False,
                "gated": "manual" if repo.settings.get("gated") else False,
                "disabled": False,
                "tags": [],
                "siblings": [{"rfilename": p} for p in sorted(repo.files)],
            }
            return self.reply(200, json.dumps(info).encode())
        if kind == "tree":
            if self.gate(repo):
                return
            prefix = urllib.parse.unquote("/".join(parts[4:]))
            entries, dirs = [], set()
            for p, i in sorted(repo.files.items()):
                if prefix and not p.startswith(prefix.rstrip("/") + "/"):
                    continue
                segs = p.split("/")
                for k in range(1, len(segs)):
                    dirs.add("/".join(segs[:k]))
                e = {"type": "file", "oid": i["oid"], "size": i["size"], "path": p}
                if i["lfs"]:
                    e["lfs"] = {"oid": i["sha256"], "size": i["size"],
                                "pointerSize": i["pointer_size"]}
                entries.append(e)
            for d in sorted(dirs):
                if not prefix or d.startswith(prefix.rstrip("/") + "/"):
                    entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": d})
            return self.reply(200, json.dumps(entries).encode())
        return self.error(404, None, "unknown api path")

    def resolve(self, repo_id, rev, file_path):
        repo = self.state.repo(repo_id)
        if repo is None:
            target = self.state.alias_target(repo_id)
            if target:
                # a renamed repo: relative redirect, on the same host
                rest = self.path.split("/", 3)[3]
                return self.reply(307, b"", {"Location": f"/{target}/{rest}"})
            return self.error(404, "RepoNotFound", "Repository not found")
        if self.gate(repo):
            return
        if not repo.has_revision(rev):
            return self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        info = repo.files.get(file_path)
        if info is None:
            return self.error(404, "EntryNotFound", f"{file_path} does not exist on \"{rev}\"",
                              {"X-Repo-Commit": repo.sha})
        weak = "W/" if repo.settings.get("weak_etag") else ""
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'{weak}"{info["oid"]}"'}
        if info["lfs"]:
            headers["X-Linked-Etag"] = f'"{info["sha256"]}"'
            headers["X-Linked-Size"] = str(info["size"])
            headers["Location"] = (f"http://127.0.0.1:{self.state.cdn_port}/cdn/"
                                   f"{info['sha256']}/{os.path.basename(file_path)}"
                                   "?signature=fake")
            return self.reply(302, b"", headers)
        mode = self.state.take_injection(self.command, self.path, BODY_MODES)
        return self.send_file(info, headers, mode)

    def cdn(self, path):
        mode = self.state.take_injection(self.command, path, ERROR_MODES + BODY_MODES)
        if mode in ERROR_MODES:
            extra = {"Retry-After": "1"} if mode == "503" else {}
            return self.error(int(mode), None, "injected failure", extra)
        if "Authorization" in self.headers:
            # signed storage urls refuse a second authentication method
            return self.error(400, None, "Only one auth mechanism allowed")
        if not path.startswith("/cdn/"):
            return self.error(404, None, "not found")
        info = self.state.blob(path[len("/cdn/"):].split("/")[0])
        if info is None:
            return self.error(404, None, "no such blob")
        return self.send_file(info, {"ETag": f'"{info["sha256"]}"'}, mode)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="folder of repos: ROOT/org/name/...")
    ap.add_argument("--port", type=int, default=0, help="hub port (0: any free port)")
    ap.add_argument("--inject", action="append", default=[], help="MODE:SUBSTR[:COUNT]")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="stop when stdin closes (the test process ended)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    state = State(os.path.abspath(args.root))
    for spec in args.inject:
        mode, match, *count = spec.split(":")
        state.injections.append({"mode": mode, "match": match,
                                 "count": int(count[0]) if count else 1, "method": ""})

    def handler(is_cdn):
        return type("H", (Handler,), {"state": state, "is_cdn": is_cdn,
                                      "verbose": args.verbose})

    hub = ThreadingHTTPServer(("127.0.0.1", args.port), handler(False))
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), handler(True))
    hub.daemon_threads = cdn.daemon_threads = True
    state.port = hub.server_address[1]
    state.cdn_port = cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    if args.exit_on_stdin_eof:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                hub.shutdown()
        threading.Thread(target=watch, daemon=True).start()
    print(state.port, flush=True)
    try:
        hub.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        cdn.shutdown()


if __name__ == "__main__":
    main()
