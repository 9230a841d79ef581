"""Safe defaults (issue 16): serve binds the loopback unless told otherwise and says so,
no traceback reaches the browser, user text is shown as text (never Markdown or HTML),
uploads wait in a private folder of the store and are imported only as reviewed."""

from __future__ import annotations

import html
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from app.dashboard import safetext, staging
from app.server import serve
from tests.app.builders import build_store
from tests.e2e.harness import ROOT, free_port, wait_health

ENTRY = str(ROOT / "app" / "dashboard" / "streamlit_app.py")
TRACKER = "![x](http://127.0.0.1:9/track)"
HOSTILE = f"{TRACKER}<img src=http://127.0.0.1:9/img> [link](http://127.0.0.1:9/) :red[x] $x$"


# Markdown: what the browser would render ------------------------------------------------


def rendered(markdown: str) -> str:
    """CommonMark's HTML for `markdown` (GFM tables and strikethrough on): what
    Streamlit's renderer builds, less its emoji/directive/math plugins."""
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


def shows_as_text(markdown: str, raw: str) -> bool:
    """The element renders `raw` as its characters, with no tag of its own."""
    out = rendered(markdown)
    tags = set(re.findall(r"<(\w+)", out))
    return tags <= {"p"} and raw in html.unescape(re.sub(r"</?p>", "", out))


@pytest.mark.parametrize(
    "raw",
    [
        HOSTILE,
        "<script>alert(1)</script>",
        "**bold** _it_ `code` ~~s~~ # h",
        "1. a list\n- item\n> quote",
        "a | b\n--|--\nc | d",
        "www.example.com/x and a@b.co",
        "back\\slash \\*not bold\\*",
        "title\n===\n---\n+ x\n2) y\n&amp; &#60;",
        "    indented code\n\n\tand a tab",
        ":smile: :material/home: http://127.0.0.1:9/x <http://127.0.0.1:9/y>",
    ],
)
def test_md_shows_every_character_and_no_markup(raw: str) -> None:
    escaped = safetext.md(raw)
    out = rendered(escaped)
    assert not re.search(r"<(img|a|script|strong|em|code|h\d|ol|ul|li|table|del|blockquote)\b", out)
    text = html.unescape(re.sub(r"</?p>", "", out)).replace(safetext.NBSP, " ")
    assert re.sub(r"\s+", " ", text).strip() == re.sub(r"\s+", " ", raw.expandtabs(4)).strip()
    # Streamlit's own constructs need the colon or dollar, both escaped.
    assert ":red[" not in escaped and "$x$" not in escaped


def test_md_keeps_plain_messages_readable() -> None:
    text = "bad.csv, line 3, column 'loss': expected a number, got 'oops' (a > b) - c!"
    assert safetext.md(text) == text


def test_code_span_holds_any_backticks() -> None:
    value = "a`b``c"
    out = rendered(safetext.code(value))
    assert out == f"<p><code>{html.escape(value)}</code></p>\n"


# The bound address ------------------------------------------------------------------------


def listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} write them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


def other_local_addresses() -> list[str]:
    """This machine's IPv4 addresses besides the loopback ones (may be none)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({i[4][0] for i in infos if not str(i[4][0]).startswith("127.")})


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs /proc/net/tcp")
def test_serve_binds_the_loopback_by_default_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--store", str(tmp_path / "s"),
             "--port", str(port), "--no-scheduler"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    line = (
        f"scalinglab dashboard: http://127.0.0.1:{port}  (bound to 127.0.0.1: this machine "
        f"only; --host 0.0.0.0 shares it)  (store: {tmp_path / 's'})"
    )
    try:
        wait_health(f"http://127.0.0.1:{port}", proc)
        deadline = time.monotonic() + 60
        while line not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert line in log.read_text(), log.read_text()
        assert listening(port) == ["0100007F"]  # 127.0.0.1 alone, no 0.0.0.0, no ::
        for address in other_local_addresses():
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_the_child_gets_the_address_and_no_error_details() -> None:
    default = serve.streamlit_command(8501)
    assert default[default.index("--server.address") + 1] == "127.0.0.1"
    assert default[default.index("--client.showErrorDetails") + 1] == "none"
    shared = serve.streamlit_command(8501, "0.0.0.0")
    assert shared[shared.index("--server.address") + 1] == "0.0.0.0"
    line = serve.address_line("0.0.0.0", 8501, Path("/s"))
    assert line == (
        "scalinglab dashboard: http://localhost:8501  (bound to 0.0.0.0: every network "
        "interface)  (store: /s)"
    )


def test_host_and_address_are_one_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 0
    assert "--host,--address" in re.sub(r"\s+", "", done.stdout) or (
        "--host" in done.stdout and "--address" in done.stdout
    )
    assert "127.0.0.1" in done.stdout


# No traceback in the browser -------------------------------------------------------------


def test_config_turns_error_details_off() -> None:
    from streamlit.config import ShowErrorDetailsConfigOptions

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    value = config["client"]["showErrorDetails"]
    assert value == ShowErrorDetailsConfigOptions.NONE.value == "none"


def _failing_page() -> None:
    from app.dashboard import pageerrors

    def page() -> None:
        raise ZeroDivisionError("secret detail /srv/store/path")

    pageerrors.guard(page)


def test_a_page_error_shows_an_id_that_the_log_carries(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.dashboard import pageerrors

    monkeypatch.setattr(pageerrors, "propagate", lambda: False)  # as on a server
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    pageerrors.LOG.addHandler(handler)
    try:
        at = AppTest.from_function(_failing_page, default_timeout=60).run()
    finally:
        pageerrors.LOG.removeHandler(handler)
    assert not at.exception
    [shown] = [e.value for e in at.error]
    error_id = re.fullmatch(
        r"Something went wrong on this page \(error id ([0-9a-f]{8})\)\. "
        r"The server log has the details under that id\.",
        shown,
    ).group(1)  # type: ignore[union-attr]
    assert "secret" not in shown and "ZeroDivision" not in shown
    [record] = records
    assert error_id in record.getMessage() and record.exc_info is not None
    assert isinstance(record.exc_info[1], ZeroDivisionError)


# The Upload page ---------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    built = build_store(tmp_path / "store")
    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)
    return built


def upload(name: str, payload: bytes) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    at.switch_page("views/upload.py").run()
    at.file_uploader(key="upload-files").set_value((name, payload, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def test_a_hostile_cell_and_file_name_are_shown_as_text(store: object) -> None:
    name = "![n](track.png)<img src=x onerror=alert(1)>.csv"  # no '/': a file name
    at = upload(name, f"run,step,loss\na,1,{HOSTILE}\n".encode())
    [error] = at.error
    assert error.value.startswith("Cannot import: ")
    assert shows_as_text(error.value, f"got '{HOSTILE}'")
    assert shows_as_text(error.value, f"{name}, line 2")  # the file name the message quotes
    [header] = at.subheader
    assert header.value == safetext.md(name) and shows_as_text(header.value, name)


def test_uploads_wait_in_a_private_folder_and_go_after_the_import(store: object) -> None:
    from store import queries

    at = upload("curves.csv", b"run,step,loss\nup-a,1,3.0\nup-a,2,2.8\n")
    [staged] = at.session_state["upload-staged"].values()
    root = Path(os.environ["SCALINGLAB_STORE"]) / "staging"
    assert staged.folder.parent == root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(staged.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(staged.path.stat().st_mode) == 0o600
    assert staged.path.name == "curves.csv" and staged.folder.name != staged.sha256[:16]
    at.button(key="upload-confirm").click().run()
    assert not at.exception, at.exception
    assert set(queries.list_runs(store, "uploads")["run"]) == {"up-a"}
    assert not staged.folder.exists()


def test_a_file_changed_after_review_is_refused(store: object) -> None:
    from store import queries

    at = upload("curves.csv", b"run,step,loss\nup-a,1,3.0\n")
    [staged] = at.session_state["upload-staged"].values()
    staged.path.write_bytes(b"run,step,loss\nswapped,1,1.0\n")  # after the review
    at.button(key="upload-confirm").click().run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "changed after it was reviewed" in errors and "nothing imported" in errors
    assert "uploads" not in queries.list_projects(store)
    assert staged.path.exists()  # kept for the user to see; dropped with the file


def test_dropping_a_file_removes_its_staged_copy(store: object) -> None:
    at = upload("curves.csv", b"run,step,loss\nup-a,1,3.0\n")
    [staged] = at.session_state["upload-staged"].values()
    at.file_uploader(key="upload-files").set_value([]).run()
    assert not staged.folder.exists() and not at.session_state["upload-staged"]


# The staging folder itself -----------------------------------------------------------------


def test_staging_root_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "staging").mkdir(mode=0o755)
    os.chmod(tmp_path / "staging", 0o755)
    root = staging.staging_root(tmp_path)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_staging_refuses_a_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "staging").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(staging.StagingError, match="is not a folder"):
        staging.stage(tmp_path, "a.csv", b"x")
    assert not list((tmp_path / "elsewhere").iterdir())


def test_staged_names_stay_inside_their_folder(tmp_path: Path) -> None:
    one = staging.stage(tmp_path, "../../etc/passwd", b"a")
    two = staging.stage(tmp_path, "../../etc/passwd", b"a")
    assert one.path.name == "passwd" and one.folder.parent == tmp_path / "staging"
    assert one.folder != two.folder  # a random folder per upload, not per content
    assert staging.safe_name("..") == "upload.csv"


def test_stale_staged_uploads_are_swept(tmp_path: Path) -> None:
    old = staging.stage(tmp_path, "old.csv", b"a")
    new = staging.stage(tmp_path, "new.csv", b"b")
    os.utime(old.folder, (1_000_000.0, 1_000_000.0))
    os.utime(new.folder, (2_000_000.0, 2_000_000.0))
    removed = staging.sweep_stale(tmp_path, older_than_s=500_000.0, now=2_000_000.0)
    assert removed == [old.folder] and new.path.exists() and not old.folder.exists()
