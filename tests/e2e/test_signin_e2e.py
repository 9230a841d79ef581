"""Sign-in end to end: a real OpenID provider (panva's oidc-provider, tests/e2e/oidc/) on
127.0.0.1, `scalinglab serve --auth FILE` (through $SCALINGLAB_AUTH), Debian's Chromium.

Signed out, a visitor sees the sign-in page alone (no store, no data, no navigation) at
every URL; viewer, editor and admin sign in through the provider's login form, each sees
and may do what the role allows (the viewer cannot reach Upload, the editor imports a file
that the store then credits to them, the admin reads the audit log), and signs out; a user
on no list is refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Store, audit
from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.harness import ROOT, Server, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OIDC = ROOT / "tests" / "e2e" / "oidc"
CLIENT_ID, CLIENT_SECRET = "scalinglab-e2e", "e2e-client-secret"
PROJECT = "secretproject"
# The provider's accounts (tests/e2e/oidc/provider.js): login, password, e-mail.
ACCOUNTS = {
    "viewer": ("vera", "vera-pw", "vera@example.org"),
    "editor": ("eddie", "eddie-pw", "eddie@example.org"),  # the provider says Eddie@Example.org
    "admin": ("ada", "ada-pw", "ada@example.org"),
    None: ("sam", "sam-pw", "sam@elsewhere.org"),
}
ROLES = """
[roles.viewer]
groups = ["readers"]
[roles.editor]
emails = ["eddie@example.org"]
[roles.admin]
groups = ["lab-admins"]
"""


class Provider:
    """`node tests/e2e/oidc/provider.js` on a free port, its issuer read from its stdout."""

    def __init__(self, redirect_uri: str) -> None:
        node = shutil.which("node")
        if node is None or not (OIDC / "node_modules" / "oidc-provider").exists():
            pytest.skip("the test provider is not installed: make oidc (npm ci in tests/e2e/oidc)")
        self.proc = subprocess.Popen(
            [node, str(OIDC / "provider.js"), CLIENT_ID, CLIENT_SECRET, redirect_uri],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the test provider exited with {self.proc.wait()}")
        self.issuer = json.loads(line)["issuer"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def signin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Provider]]:
    from store.importers import import_files

    base = tmp_path_factory.mktemp("signin")
    port = free_port()
    provider = Provider(f"http://127.0.0.1:{port}/oauth2callback")
    auth = base / "auth.toml"
    auth.write_text(
        f"""[auth]
redirect_uri = "http://127.0.0.1:{{port}}/oauth2callback"
cookie_secret = "{os.urandom(24).hex()}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
server_metadata_url = "{provider.issuer}/.well-known/openid-configuration"
client_kwargs = {{ scope = "openid email profile groups", prompt = "login" }}
"""
        + ROLES
    )
    store = base / "store"
    csv = base / "seed.csv"
    csv.write_text("run,step,loss\nseeded-run,1,3.0\nseeded-run,2,2.5\n")
    import_files(Store(store), [csv], project=PROJECT)
    previous = os.environ.get("SCALINGLAB_AUTH")
    os.environ["SCALINGLAB_AUTH"] = str(auth)  # Server passes its environment on
    try:
        server = Server(store, port=port)
    finally:
        if previous is None:
            del os.environ["SCALINGLAB_AUTH"]
        else:
            os.environ["SCALINGLAB_AUTH"] = previous
    yield server, provider
    server.stop()
    provider.stop()


def page_names(pg: object) -> set[str]:
    """The navigation's page titles (each link's text ends with its title)."""
    texts = pg.locator('[data-testid="stSidebarNav"] a').all_inner_texts()  # type: ignore[attr-defined]
    return {t.strip().splitlines()[-1].strip() for t in texts}


def assert_sign_in_page_only(pg: object, store: Path) -> None:
    pg.get_by_role("button", name="Sign in").wait_for()  # type: ignore[attr-defined]
    wait_idle(pg)
    body = pg.inner_text("body")  # type: ignore[attr-defined]
    for hidden in (str(store), PROJECT, "seeded-run", "store:", "Upload", "Runs"):
        assert hidden not in body
    assert pg.locator('[data-testid="stSidebarNav"]').count() == 0  # type: ignore[attr-defined]
    assert pg.locator('[data-testid="stSidebar"]').count() == 0  # type: ignore[attr-defined]


def refused_url(pg: object, url: str, signed_in_as: str) -> None:
    """A page outside the user's navigation: Streamlit says it does not exist and runs
    the default page instead."""
    pg.goto(url)  # type: ignore[attr-defined]
    pg.get_by_text(signed_in_as).wait_for()  # type: ignore[attr-defined]
    pg.get_by_text("Page not found").wait_for()  # type: ignore[attr-defined]
    wait_idle(pg)


def sign_in(pg: object, server: Server, provider: Provider, login: str, password: str) -> None:
    """Through the provider's own login form, back to the dashboard."""
    pg.goto(server.url)  # type: ignore[attr-defined]
    pg.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    pg.wait_for_url(f"{provider.issuer}/interaction/**")  # type: ignore[attr-defined]
    pg.get_by_label("Username").fill(login)  # type: ignore[attr-defined]
    pg.get_by_label("Password").fill(password)  # type: ignore[attr-defined]
    pg.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    pg.wait_for_url(f"{server.url}/**")  # type: ignore[attr-defined]


def sign_out(pg: object, server: Server, provider: Provider) -> None:
    """The sidebar's button, the provider's end-session page, back to the sign-in page."""
    pg.get_by_role("button", name="Sign out").click()  # type: ignore[attr-defined]
    pg.wait_for_url(f"{provider.issuer}/session/end**")  # type: ignore[attr-defined]
    pg.get_by_role("button", name="Yes, sign me out").click()  # type: ignore[attr-defined]
    assert_sign_in_page_only(pg, server.store)
    pg.reload()  # type: ignore[attr-defined]
    assert_sign_in_page_only(pg, server.store)  # the identity cookie is gone


def test_signed_out_visitor_sees_only_the_sign_in_page(
    signin: tuple[Server, Provider], page: object
) -> None:
    server, _ = signin
    for path in ("/", "/upload", "/audit", "/jobs"):
        page.goto(server.url + path)  # type: ignore[attr-defined]
        assert_sign_in_page_only(page, server.store)
    screenshot(page, "signin-signed-out")


def test_viewer_reads_but_cannot_reach_upload_or_audit(
    signin: tuple[Server, Provider], page: object
) -> None:
    server, provider = signin
    login, password, email = ACCOUNTS["viewer"]
    sign_in(page, server, provider, login, password)
    page.get_by_text(f"signed in as {email} (viewer)").wait_for()  # type: ignore[attr-defined]
    wait_idle(page)
    names = page_names(page)
    assert {"Runs", "Fit", "Jobs"} <= names and not names & {"Upload", "Audit"}
    page.get_by_text("seeded-run").first.wait_for(state="attached")  # type: ignore[attr-defined]  # reads data
    for path in ("/upload", "/audit"):  # not in its navigation: the URL does not open it
        refused_url(page, server.url + path, f"signed in as {email} (viewer)")
        assert page.locator('input[type="file"]').count() == 0  # type: ignore[attr-defined]
        assert page.get_by_role("heading", name="Audit").count() == 0  # type: ignore[attr-defined]
    screenshot(page, "signin-viewer")
    page.goto(server.url)  # type: ignore[attr-defined]
    sign_out(page, server, provider)


def test_editor_uploads_and_the_store_names_them(
    signin: tuple[Server, Provider], page: object, tmp_path: Path
) -> None:
    server, provider = signin
    login, password, email = ACCOUNTS["editor"]
    sign_in(page, server, provider, login, password)
    page.get_by_text(f"signed in as {email} (editor)").wait_for()  # type: ignore[attr-defined]
    wait_idle(page)
    names = page_names(page)
    assert {"Runs", "Upload", "Fit", "Jobs"} <= names and "Audit" not in names
    page.goto(f"{server.url}/upload")  # type: ignore[attr-defined]
    wait_idle(page)
    csv = tmp_path / "editor.csv"
    csv.write_text("run,step,loss\nedited-run,1,3.0\nedited-run,2,2.4\n")
    page.locator('input[type="file"]').set_input_files(str(csv))  # type: ignore[attr-defined]
    confirm = page.get_by_role("button", name=re.compile(r"^Import 1 file"))  # type: ignore[attr-defined]
    confirm.wait_for()
    wait_idle(page)
    confirm.click()
    page.get_by_text("Imported into 'uploads'").wait_for()  # type: ignore[attr-defined]
    with Store(server.store).connect(read_only=True) as con:
        rows = con.execute(
            "SELECT imported_by FROM uploads WHERE original_name LIKE '%editor.csv'"
        ).fetchall()
    assert rows == [(email,)]
    logged = audit.list_audit(Store(server.store), actor=email, action="upload")
    assert list(logged["project"]) == ["uploads"]
    refused_url(page, f"{server.url}/audit", f"signed in as {email} (editor)")
    assert page.get_by_role("heading", name="Audit").count() == 0  # type: ignore[attr-defined]
    page.goto(server.url)  # type: ignore[attr-defined]
    sign_out(page, server, provider)


def test_admin_reads_the_audit_log(signin: tuple[Server, Provider], page: object) -> None:
    server, provider = signin
    login, password, email = ACCOUNTS["admin"]
    sign_in(page, server, provider, login, password)
    page.get_by_text(f"signed in as {email} (admin)").wait_for()  # type: ignore[attr-defined]
    wait_idle(page)
    assert {"Runs", "Upload", "Fit", "Jobs", "Audit"} <= page_names(page)
    page.goto(f"{server.url}/audit")  # type: ignore[attr-defined]
    page.get_by_role("heading", name="Audit").wait_for()  # type: ignore[attr-defined]
    wait_idle(page)
    table = page.locator('[data-testid="stDataFrame"]')  # type: ignore[attr-defined]
    table.wait_for()
    screenshot(page, "signin-admin-audit")
    # The page lists what the store holds: the admin's own sign-in at least, as a row.
    logged = audit.list_audit(Store(server.store))
    assert email in set(logged[logged["action"] == "sign_in"]["actor"])
    grid = table.locator('[role="grid"]')
    shown_rows = int(grid.get_attribute("aria-rowcount") or 0) - 1  # less the header row
    assert shown_rows == len(logged)
    # One row per sign-in, however many pages each opened: vera, eddie, ada so far.
    signed = logged[logged["action"] == "sign_in"]["actor"]
    assert sorted(signed) == sorted(set(signed))
    sign_out(page, server, provider)


def test_user_on_no_list_is_refused_and_a_wrong_password_is_not_let_in(
    signin: tuple[Server, Provider], page: object
) -> None:
    server, provider = signin
    login, password, email = ACCOUNTS[None]
    sign_in_page = page
    sign_in_page.goto(server.url)  # type: ignore[attr-defined]
    sign_in_page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    sign_in_page.wait_for_url(f"{provider.issuer}/interaction/**")  # type: ignore[attr-defined]
    sign_in_page.get_by_label("Username").fill(login)  # type: ignore[attr-defined]
    sign_in_page.get_by_label("Password").fill("not-the-password")  # type: ignore[attr-defined]
    sign_in_page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    sign_in_page.get_by_text("Wrong username or password.").wait_for()  # type: ignore[attr-defined]
    assert sign_in_page.url.startswith(provider.issuer)  # type: ignore[attr-defined]
    sign_in(page, server, provider, login, password)
    page.get_by_text("not on this dashboard's list of users").wait_for()  # type: ignore[attr-defined]
    wait_idle(page)
    body = page.inner_text("body")  # type: ignore[attr-defined]
    assert email in body
    for hidden in (str(server.store), PROJECT, "seeded-run", "store:"):
        assert hidden not in body
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0  # type: ignore[attr-defined]
    refused = audit.list_audit(Store(server.store), actor=email)
    assert list(refused["action"]) == ["sign_in_refused"]
    screenshot(page, "signin-refused")
