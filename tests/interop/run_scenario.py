"""The interop scenario: our instance and real peers in a throwaway network namespace.

Run as root inside a fresh network, mount and PID namespace (tests/interop/conftest.py does it):

    unshare --net --mount --pid --fork --kill-child -- \
        .venv/bin/python tests/interop/run_scenario.py WORKDIR

It brings loopback up, bind-mounts a private hosts file over /etc/hosts (a.test, b.test,
c.test on 127.0.0.2-4), and starts, each on port 80 of its own address:
- http://a.test  our instance: `fediverse-stories init`, `user add amina`, `serve`
- http://b.test  bovine-herd (tests/interop/peers/bovine_herd_app.py) with the user `milan`
- http://c.test  fediverse-pasture's actor verifier (tests/interop/peers/pasture_server.py)
The peers run in .venv-interop with their JSON-LD context cache pre-filled from
tests/fixtures/ld_contexts.json, so nothing is downloaded; the namespace has no route out.

It then plays the scenario of issue 9 and prints one JSON document on stdout: facts, not
verdicts (the tests in this folder assert on them). Logs of every process stay in WORKDIR.
Being PID 1 of its namespace, its exit ends every process it started.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"
PEER_PYTHON = ROOT / ".venv-interop" / "bin" / "python"
OUR_CLI = Path(sys.executable).with_name("fediverse-stories")
LD_CONTEXTS = Path(
    os.environ.get(
        "FEDIVERSE_STORIES_LD_CONTEXTS", ROOT / "tests" / "fixtures" / "ld_contexts.json"
    )
)

HOSTS = {"a.test": "127.0.0.2", "b.test": "127.0.0.3", "c.test": "127.0.0.4"}
A = "http://a.test"
B = "http://b.test"
C = "http://c.test"
AUTHOR = "amina"
AUTHOR_URI = f"{A}/users/{AUTHOR}"
BOVINE_USER = "milan"


def object_id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def log(message: str) -> None:
    print(f"[scenario {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- the namespace


def loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def private_hosts(workdir: Path) -> None:
    hosts = workdir / "hosts"
    lines = ["127.0.0.1 localhost", "::1 localhost"]
    lines += [f"{address} {name}" for name, address in HOSTS.items()]
    hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
    for name, address in HOSTS.items():
        resolved = socket.gethostbyname(name)
        assert resolved == address, f"{name} resolves to {resolved}, not {address}"


def check_isolated() -> None:
    """The namespace must have no way out: connecting to a public address fails at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed; only the route is checked
        except OSError:
            return
    raise RuntimeError("the namespace has a route out: refusing to run")


# ---------------------------------------------------------------------------- processes


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        out = open(self.workdir / f"{name}.log", "wb")
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        self.running.append((name, process))

    def alive(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self.running)

    def stop_all(self) -> None:
        for _, process in reversed(self.running):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 5
        for _, process in self.running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = condition()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.2)


def poll(condition: Callable[[], Any], seconds: float) -> Any:
    """Like wait_for, but a timeout is a result (None), not an error."""
    try:
        return wait_for(condition, "", seconds)
    except TimeoutError:
        return None


def http(url: str, accept: str = "text/html", timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def healthy(base: str) -> bool:
    try:
        return http(f"{base}/healthz", timeout=2)[0] == 200
    except OSError:
        return False


# ---------------------------------------------------------------------------- our instance


class Ours:
    def __init__(self, workdir: Path) -> None:
        data = workdir / "a"
        data.mkdir()
        self.database = data / "stories.sqlite"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FEDIVERSE_STORIES_")}
        self.env.update(
            {
                "FEDIVERSE_STORIES_BASE_URL": A,
                "FEDIVERSE_STORIES_DATA_DIR": str(data),
                "FEDIVERSE_STORIES_DATABASE_URL": f"sqlite+aiosqlite:///{self.database}",
                "FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES": "1",
                "FEDIVERSE_STORIES_WORKER_IDLE_SLEEP_SECONDS": "0.2",
                "FEDIVERSE_STORIES_FETCH_TIMEOUT_SECONDS": "10",
            }
        )
        self.data = data

    def cli(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [str(OUR_CLI), *args],
            env=self.env,
            cwd=self.data,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"fediverse-stories {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10)
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute(sql, params)]
        finally:
            connection.close()

    def inbox_rows(self, where: str = "1=1", *params: Any) -> list[dict[str, Any]]:
        return self.query(
            "SELECT id, uri, type, actor_uri, signer_key_id, received_at, processed_at, outcome"
            f" FROM inbox_activities WHERE {where} ORDER BY id",
            *params,
        )

    def inbox_jobs_pending(self) -> int:
        """Inbox jobs in hand or not yet tried (a job waiting to be retried is not pending)."""
        return int(
            self.query(
                "SELECT count(*) AS n FROM jobs WHERE kind = 'inbox'"
                " AND (state = 'claimed' OR (state = 'queued' AND attempts = 0))"
            )[0]["n"]
        )

    def unprocessed(self) -> int:
        return int(
            self.query("SELECT count(*) AS n FROM inbox_activities WHERE processed_at IS NULL")[0][
                "n"
            ]
        )

    def comments_on(self, story_url: str) -> list[dict[str, Any]]:
        try:
            return self.query(
                "SELECT c.id, c.uri, c.local, c.state, c.in_reply_to, c.content_html"
                " FROM comments c JOIN stories s ON s.id = c.story_id WHERE s.uri = ?",
                story_url,
            )
        except sqlite3.Error as error:  # the comments schema is still being built (issue 5)
            log(f"comments query failed: {error}")
            return []

    def jobs(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT id, kind, payload, state, attempts, last_error FROM jobs ORDER BY id"
        )


# ---------------------------------------------------------------------------- bovine


class Bovine:
    def __init__(self, workdir: Path, processes: Processes) -> None:
        self.dir = workdir / "b"
        self.dir.mkdir()
        self.env = dict(os.environ)
        self.env["BOVINE_DB_URL"] = f"sqlite://{self.dir / 'bovine.sqlite3'}"
        self.env["BOVINE_DOMAIN"] = B
        self.processes = processes
        self.actor_uri = ""

    def peer(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(PEER_PYTHON), *args],
            env=self.env,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def act(self, *args: str, timeout: float = 120) -> Any:
        started = time.monotonic()
        answer = json.loads(self.peer(str(PEERS / "bovine_act.py"), *args, timeout=timeout))
        log(f"bovine_act {args[0]}: {time.monotonic() - started:.1f} s")
        return answer

    def start(self) -> None:
        self.peer(str(PEERS / "ld_cache.py"), str(LD_CONTEXTS), str(self.dir))
        self.processes.start(
            "bovine-herd",
            [str(PEER_PYTHON), str(PEERS / "bovine_herd_app.py"), f"{HOSTS['b.test']}:80"],
            self.dir,
            self.env,
        )

    def register(self) -> None:
        out = self.peer("-m", "bovine_tool.register", BOVINE_USER, "--domain", B)
        bovine_name = out.split("Bovine name:", 1)[1].strip()
        out = self.peer("-m", "bovine_tool.manage", bovine_name, "--new_did_key")
        self.env["BOVINE_SECRET"] = out.split("Your new secret:", 1)[1].split()[0]
        self.actor_uri = self.act("whoami")["id"]


# ---------------------------------------------------------------------------- the scenario


def wanted(name: str) -> bool:
    """INTEROP_STEPS=a,b runs only those steps (for working on one of them)."""
    steps = os.environ.get("INTEROP_STEPS")
    return not steps or name in steps.split(",")


def step(results: dict[str, Any], name: str, work: Callable[[], dict[str, Any]]) -> None:
    started = time.monotonic()
    log(f"{name}: start")
    try:
        results[name] = work()
    except Exception as error:
        results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["traceback"] = traceback.format_exc()[-3000:]
    results[name]["seconds"] = round(time.monotonic() - started, 1)
    log(f"{name}: done in {results[name]['seconds']} s")


def main(workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"started": time.time()}
    loopback_up()
    private_hosts(workdir)
    check_isolated()

    processes = Processes(workdir)
    ours = Ours(workdir)
    bovine = Bovine(workdir, processes)
    pasture_dir = workdir / "c"
    pasture_dir.mkdir()
    try:
        # Everything starts at once; each is waited for afterwards.
        subprocess.run(
            [str(PEER_PYTHON), str(PEERS / "ld_cache.py"), str(LD_CONTEXTS), str(pasture_dir)],
            check=True,
            capture_output=True,
        )
        processes.start(
            "pasture",
            [str(PEER_PYTHON), str(PEERS / "pasture_server.py"), "c.test", f"{HOSTS['c.test']}:80"],
            pasture_dir,
            dict(os.environ),
        )
        bovine.start()
        ours.cli("init")
        ours.cli("user", "add", AUTHOR, "--role", "author", "--display-name", "Amina")
        processes.start(
            "ours",
            [str(OUR_CLI), "serve", "--host", HOSTS["a.test"], "--port", "80"],
            ours.data,
            ours.env,
        )
        wait_for(lambda: healthy(A), "our instance to be healthy")
        wait_for(
            lambda: http(f"{B}/.well-known/nodeinfo", "application/json", 2)[0] == 200,
            "bovine-herd to answer",
        )
        bovine.register()
        wait_for(lambda: http(f"{C}/actor", "application/activity+json", 2)[0] == 200, "pasture")
        results["peers"] = {"bovine_actor": bovine.actor_uri, "our_author": AUTHOR_URI}
        story: dict[str, str] = {}

        if wanted("bovine_follows_us"):
            step(
                results,
                "bovine_follows_us",
                lambda: bovine_follows_us(ours, bovine, workdir, story),
            )
        if wanted("we_follow_bovine"):
            step(results, "we_follow_bovine", lambda: we_follow_bovine(ours, bovine))
        if wanted("verify_actor"):
            step(results, "verify_actor", lambda: verify_actor())
        if wanted("pasture_inputs"):
            step(
                results,
                "pasture_inputs",
                lambda: pasture_inputs(ours, bovine, workdir, pasture_dir),
            )
        results["alive"] = {
            name: processes.alive(name) for name in ("ours", "bovine-herd", "pasture")
        }
    finally:
        processes.stop_all()
    results["seconds"] = round(time.time() - results.pop("started"), 1)
    return results


def bovine_follows_us(
    ours: Ours, bovine: Bovine, workdir: Path, story: dict[str, str]
) -> dict[str, Any]:
    """Must show 1: follow, Accept, our story reaches bovine, bovine's reply is a comment."""
    out: dict[str, Any] = {}
    sent = bovine.act("follow", AUTHOR_URI)
    out["follow_outbox_status"] = sent["status"]

    def listed() -> str | None:
        for line in ours.cli("follower", "list", AUTHOR).splitlines():
            fields = line.split("\t")
            if len(fields) >= 3 and fields[1] == bovine.actor_uri:
                return fields[2]
        return None

    out["our_follower_state"] = poll(lambda: listed() == "accepted" and "accepted", 20) or listed()
    following = poll(
        lambda: (
            AUTHOR_URI in [object_id(i) for i in bovine.act("collection", "following")["items"]]
        ),
        20,
    )
    out["bovine_following_us"] = bool(following)
    out["our_inbox_follow"] = ours.inbox_rows("type = 'Follow'")

    body = workdir / "story.md"
    body.write_text("We **listened** first, then we built the well.\n", encoding="utf-8")
    url = ours.cli(
        "story", "publish", "--author", AUTHOR, "--title", "Listening first", str(body)
    ).strip()
    story["url"] = url
    out["story_url"] = url
    inbox = bovine.act("inbox", "--wait-for", f"{url}/activity", "--timeout", "30", timeout=60)
    out["story_reached_bovine"] = any(
        isinstance(item, dict)
        and item.get("type") == "Create"
        and object_id(item.get("object")) == url
        for item in inbox["items"]
    )
    out["bovine_inbox_types"] = [
        item.get("type") if isinstance(item, dict) else item for item in inbox["items"]
    ]
    out["our_jobs"] = [
        {k: job[k] for k in ("kind", "state", "attempts", "last_error")} for job in ours.jobs()
    ]

    reply_text = "Lovely story! We did the same in Mopti."
    sent = bovine.act("reply", url, AUTHOR_URI, reply_text)
    out["reply_outbox_status"] = sent["status"]
    out["reply_id"] = sent.get("location")
    poll(lambda: ours.inbox_rows("type = 'Create' AND actor_uri = ?", bovine.actor_uri), 20)
    poll(lambda: ours.inbox_jobs_pending() == 0, 20)
    out["our_inbox_reply"] = ours.inbox_rows("type = 'Create' AND actor_uri = ?", bovine.actor_uri)
    out["comments"] = poll(lambda: ours.comments_on(url), 10) or ours.comments_on(url)
    status, page = http(url)
    out["story_page_status"] = status
    out["reply_on_story_page"] = reply_text in page
    return out


def we_follow_bovine(ours: Ours, bovine: Bovine) -> dict[str, Any]:
    """Must show 2: our author follows the bovine user, it accepts, its post reaches us."""
    out: dict[str, Any] = {}
    ours.cli("follow", f"{BOVINE_USER}@b.test", "--as", AUTHOR)
    inbox = bovine.act("inbox", "--wait-for", '"Follow"', "--timeout", "20", timeout=60)
    follows = [i for i in inbox["items"] if isinstance(i, dict) and i.get("type") == "Follow"]
    out["bovine_inbox_follows"] = follows
    out["follow_reached_bovine"] = any(object_id(i.get("actor")) == AUTHOR_URI for i in follows)
    accepted = bovine.act("accept-follows", AUTHOR_URI)["accepted"]
    out["accept_outbox_statuses"] = [a["status"] for a in accepted]

    def follow_state() -> str | None:
        rows = ours.query(
            "SELECT f.state FROM follows f JOIN actors r ON r.id = f.follower_id"
            " JOIN actors d ON d.id = f.followed_id WHERE r.uri = ? AND d.uri = ?",
            AUTHOR_URI,
            bovine.actor_uri,
        )
        return str(rows[0]["state"]) if rows else None

    out["our_follow_state"] = (
        poll(lambda: (follow_state() or "").lower() == "accepted" and follow_state(), 20)
        or follow_state()
    )
    out["bovine_followers"] = bovine.act("collection", "followers")["items"]
    out["our_inbox_accept"] = ours.inbox_rows("type = 'Accept'")

    text = "Hello from the herd: our water committee met today."
    sent = bovine.act("post", text)
    out["post_outbox_status"] = sent["status"]
    rows = poll(
        lambda: [
            r
            for r in ours.inbox_rows("type = 'Create' AND actor_uri = ?", bovine.actor_uri)
            if text
            in json.dumps(ours.query("SELECT raw FROM inbox_activities WHERE id = ?", r["id"]))
        ],
        20,
    )
    out["post_in_our_inbox"] = rows or []
    poll(lambda: ours.inbox_jobs_pending() == 0, 20)
    if rows:
        out["post_in_our_inbox"] = ours.inbox_rows("id = ?", rows[0]["id"])
    status, page = http(f"{A}/network")
    out["network_status"] = status
    out["post_on_network_page"] = text in page
    return out


def verify_actor() -> dict[str, Any]:
    """Must show 3: fediverse-pasture's verifier against our author."""
    status, body = http(f"{C}/?actor_uri={AUTHOR_URI}", accept="application/json", timeout=120)
    out: dict[str, Any] = {"status": status}
    try:
        answer = json.loads(body)
        out["result"] = answer["result"]
        out["messages"] = json.loads(answer["messages"])
    except (ValueError, KeyError):
        out["body"] = body[:2000]
    return out


def pasture_inputs(ours: Ours, bovine: Bovine, workdir: Path, pasture_dir: Path) -> dict[str, Any]:
    """Must show 4: every fediverse-pasture-inputs example, as a reply to a local story."""
    out: dict[str, Any] = {}
    body = workdir / "inputs-story.md"
    body.write_text("A story that collects every kind of reply.\n", encoding="utf-8")
    url = ours.cli(
        "story", "publish", "--author", AUTHOR, "--title", "Replies welcome", str(body)
    ).strip()
    out["story_url"] = url
    started = time.monotonic()
    done = subprocess.run(
        [str(PEER_PYTHON), str(PEERS / "pasture_send_inputs.py"), C, url, AUTHOR_URI],
        cwd=pasture_dir,
        capture_output=True,
        text=True,
        timeout=240,
    )
    (workdir / "pasture-send.log").write_text(done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise RuntimeError(f"pasture_send_inputs: {done.stderr[-2000:]}")
    sent = json.loads(done.stdout)
    out["send_seconds"] = round(time.monotonic() - started, 1)
    drained = poll(lambda: ours.inbox_jobs_pending() == 0, 90)
    out["drained"] = bool(drained)
    out["unprocessed"] = ours.query(
        "SELECT a.uri, j.state, j.attempts, j.last_error FROM inbox_activities a"
        " LEFT JOIN jobs j ON j.kind = 'inbox' AND json_extract(j.payload, '$.id') = a.id"
        " WHERE a.processed_at IS NULL"
    )
    rows = {row["uri"]: row for row in ours.inbox_rows("actor_uri = ?", f"{C}/actor")}
    for entry in sent:
        row = rows.get(entry["activity_id"])
        entry["processed"] = bool(row and row["processed_at"])
        entry["outcome"] = row["outcome"] if row else None
    comments = ours.comments_on(url)
    by_uri = {c["uri"]: c for c in comments}
    for entry in sent:
        comment = by_uri.get(entry["object_id"])
        entry["comment_state"] = comment["state"] if comment else None
    out["sent"] = sent
    out["comments"] = comments
    out["healthy_after"] = healthy(A)
    status, page = http(url)
    out["story_page_status"] = status
    out["story_page"] = page

    # The worker still processes later activities: a plain reply from bovine after all of them.
    text = "Still here after the flood."
    bovine.act("reply", url, AUTHOR_URI, text)
    later = poll(
        lambda: [
            r
            for r in ours.inbox_rows("actor_uri = ? AND processed_at IS NOT NULL", bovine.actor_uri)
            if text
            in ours.query("SELECT raw FROM inbox_activities WHERE id = ?", r["id"])[0]["raw"]
        ],
        30,
    )
    out["later_activity_processed"] = bool(later)
    out["later_comment"] = any(text in (c["content_html"] or "") for c in ours.comments_on(url))
    return out


if __name__ == "__main__":
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    try:
        outcome = main(directory)
    except Exception as error:
        outcome = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    json.dump(outcome, sys.stdout, indent=1, default=str)
    sys.stdout.flush()
