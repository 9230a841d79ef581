"""Issue 16's roles at the function level: every action against every role (the issue's
table, written out here rather than read from `access.ACTIONS`), roles from a provider's
claims, the sign-in file's checks, the audit log, and who made each fit, job and upload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli as command
from app.dashboard import access, authconfig
from app.server import serve
from store import Store, audit
from store.errors import BadInputError

# The issue's table: viewer reads and fits without saving; editor uploads, saves fits and
# runs jobs; admin deletes, changes settings and reads the audit log.
VIEWER = {"read", "fit"}
EDITOR = VIEWER | {"upload", "save_fit", "create_job", "edit_job", "run_job"}
ADMIN = EDITOR | {"delete", "settings", "view_audit"}
MAY = {"viewer": VIEWER, "editor": EDITOR, "admin": ADMIN}

SECRET = "s" * authconfig.MIN_COOKIE_SECRET
AUTH = f"""[auth]
redirect_uri = "http://127.0.0.1:{{port}}/oauth2callback"
cookie_secret = "{SECRET}"
client_id = "scalinglab"
client_secret = "client-secret"
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
"""
ROLES = """
[roles]
claim = "teams"
[roles.viewer]
groups = ["readers"]
[roles.editor]
emails = ["Eddie@Example.org"]
[roles.admin]
groups = ["lab-admins"]
emails = ["ada@example.org"]
"""


def test_the_actions_are_the_issues() -> None:
    assert set(access.ACTIONS) == ADMIN


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
@pytest.mark.parametrize("action", sorted(ADMIN))
def test_require_allows_exactly_the_roles_actions(role: str, action: str) -> None:
    user = access.User(name=f"{role}@example.org", role=role, signed_in=True)  # type: ignore[arg-type]
    assert access.allowed(action, user) is (action in MAY[role])
    if action in MAY[role]:
        assert access.require(action, user) is user
    else:
        # Outside a script run st.stop() returns: the refusal is an exception then.
        with pytest.raises(access.AccessDenied, match=f"role \\({role}\\) may not"):
            access.require(action, user)


@pytest.mark.parametrize(
    "user", [access.SIGNED_OUT, access.User(name="sam@elsewhere.org", role=None, signed_in=True)]
)
@pytest.mark.parametrize("action", sorted(ADMIN))
def test_signed_out_or_unlisted_may_do_nothing(user: access.User, action: str) -> None:
    assert not access.allowed(action, user)
    with pytest.raises(access.AccessDenied):
        access.require(action, user)


def test_an_unknown_action_is_an_error_not_a_permission() -> None:
    with pytest.raises(KeyError):
        access.allowed("drop_everything", access.LOCAL_USER)


def test_sign_in_off_means_the_local_admin() -> None:
    assert not access.signin_enabled()  # no secrets file here
    assert access.current_user() == access.User(name=None, role="admin")
    assert all(access.allowed(a) for a in ADMIN)


def roles() -> authconfig.Roles:
    return authconfig.parse_roles(__import__("tomllib").loads(ROLES)["roles"])


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({"email": "vera@example.org", "teams": ["readers"]}, "viewer"),
        ({"email": "eddie@example.org", "teams": ["readers"]}, "editor"),  # e-mail, any case
        ({"email": "EDDIE@example.org", "teams": "lab-admins"}, "admin"),  # the highest wins
        ({"email": "ada@example.org"}, "admin"),
        ({"email": "sam@elsewhere.org", "teams": ["visitors"]}, None),
        ({"email": "ada@example.org", "email_verified": False}, None),  # unverified e-mail
        ({"email": "vera@example.org", "groups": ["lab-admins"]}, None),  # not the claim named
    ],
)
def test_role_from_claims(claims: dict[str, object], role: str | None) -> None:
    assert roles().role_for(claims) == role


def test_user_from_claims_names_the_email_and_needs_is_logged_in() -> None:
    claims = {"is_logged_in": True, "sub": "ada", "email": "Ada@Example.org"}
    assert access.user_from_claims(claims, roles()) == access.User(
        "ada@example.org", "admin", signed_in=True
    )
    assert access.user_from_claims({"email": "ada@example.org"}, roles()) == access.SIGNED_OUT


def test_load_file_reads_auth_and_roles(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(AUTH + ROLES)
    auth, parsed = authconfig.load_file(path)
    assert auth["client_id"] == "scalinglab" and parsed.groups_claim == "teams"
    assert parsed.lists["editor"].emails == frozenset({"eddie@example.org"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ROLES, "no \\[auth\\] section"),
        (AUTH.replace('client_secret = "client-secret"\n', "") + ROLES, "lacks client_secret"),
        (AUTH.replace(SECRET, "short") + ROLES, "cookie_secret is shorter than 32"),
        (AUTH.replace("/oauth2callback", "/back") + ROLES, "must end with /oauth2callback"),
        (AUTH.replace("http://127.0.0.1:9", "idp.example.org") + ROLES, "absolute http"),
        (AUTH + ROLES.replace("[roles.viewer]", "[roles.viewers]"), "unknown key 'viewers'"),
        (AUTH + ROLES.replace('groups = ["readers"]', 'group = ["readers"]'), "unknown key"),
        (AUTH + ROLES.replace('groups = ["readers"]', 'groups = "readers"'), "list of names"),
        (AUTH, "names nobody"),
        (AUTH + "[roles\n", "not valid TOML"),
    ],
)
def test_load_file_refuses_a_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message):
        authconfig.load_file(path)


def test_serve_hands_the_file_to_streamlit_as_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(AUTH + ROLES)
    assert serve.check_auth(path) == path.resolve()
    cmd = serve.streamlit_command(8501, None, path)
    assert cmd[cmd.index("--secrets.files") + 1] == str(path)
    assert "--secrets.files" not in serve.streamlit_command(8501)


def test_serve_reads_the_env_var_and_empty_means_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(AUTH + ROLES)
    monkeypatch.setenv(authconfig.ENV_VAR, str(path))
    assert serve.check_auth(None) == path.resolve()
    monkeypatch.setenv(authconfig.ENV_VAR, "")
    assert serve.check_auth(None) is None


def test_cli_serve_refuses_a_bad_sign_in_file_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(AUTH.replace(SECRET, "short") + ROLES)
    args = ["serve", "--store", str(tmp_path / "store"), "--port", "1", "--auth", str(path)]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2
    assert "cookie_secret is shorter" in result.output
    assert not (tmp_path / "store").exists()  # nothing started, nothing created


def test_audit_log_records_and_filters(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = audit.record(
        store, actor="eddie@example.org", role="editor", action="upload", project="p"
    )
    second = audit.record(
        store,
        actor="ada@example.org",
        role="admin",
        action="delete",
        project="p",
        target="7",
        detail={"what": "job", "name": "nightly"},
    )
    frame = audit.list_audit(store)
    assert list(frame["id"]) == [second, first]  # newest first
    row = frame.iloc[0]
    assert (row["actor"], row["role"], row["action"], row["target"]) == (
        "ada@example.org",
        "admin",
        "delete",
        "7",
    )
    assert json.loads(row["detail"]) == {"name": "nightly", "what": "job"}
    assert list(audit.list_audit(store, actor="eddie@example.org")["action"]) == ["upload"]
    assert len(audit.list_audit(store, action="delete", project="other")) == 0
    assert len(audit.list_audit(store, limit=1)) == 1
    with pytest.raises(BadInputError):
        audit.record(store, actor=None, role=None, action=" ")


def test_access_audit_writes_the_given_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "store"))
    eddie = access.User("eddie@example.org", "editor", signed_in=True)
    access.audit("save_fit", project="p", target=3, detail={"law": "power_law"}, user=eddie)
    row = audit.list_audit(Store(tmp_path / "store")).iloc[0]
    assert (row["actor"], row["role"], row["action"], row["target"]) == (
        "eddie@example.org",
        "editor",
        "save_fit",
        "3",
    )


def test_fits_jobs_and_uploads_record_who_made_them(tmp_path: Path) -> None:
    from store import fits, jobs
    from store.importers import import_files

    store = Store(tmp_path / "store")
    csv = tmp_path / "curves.csv"
    csv.write_text("run,step,loss\na,1,3.0\na,2,2.5\n")
    import_files(store, [csv], project="p", imported_by="eddie@example.org")
    fit_id = fits.save_fit(
        store,
        project="p",
        law="power_law",
        result_json={},
        selection=None,
        data_hash=None,
        options=None,
        code_version=None,
        created_by="eddie@example.org",
    )
    job_id = jobs.add_job(
        store,
        name="nightly",
        project="p",
        law="power_law",
        selection=None,
        options=None,
        schedule="0 3 * * *",
        created_by="ada@example.org",
    )
    plain = fits.save_fit(
        store,
        project="p",
        law="power_law",
        result_json={},
        selection=None,
        data_hash=None,
        options=None,
        code_version=None,
    )
    assert fits.load_fit(store, fit_id)["created_by"] == "eddie@example.org"
    assert fits.load_fit(store, plain)["created_by"] is None  # sign-in off: nobody named
    assert (jobs.get_job(store, job_id) or {})["created_by"] == "ada@example.org"
    with store.connect(read_only=True) as con:
        uploads = con.execute("SELECT imported_by FROM uploads").fetchall()
    assert uploads == [("eddie@example.org",)]
    with pytest.raises(BadInputError, match="cannot update"):
        jobs.update_job(store, job_id, created_by="someone@else")
