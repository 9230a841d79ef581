"""The sign-in configuration: one TOML file, Streamlit's `[auth]` section plus `[roles]`.

`scalinglab serve --auth FILE` (or `$SCALINGLAB_AUTH`) checks the file here before anything
starts, then hands it to the Streamlit child as its secrets file (`--secrets.files`), where
`st.login` reads `[auth]` and `app.dashboard.access` reads `[roles]`::

    [auth]
    redirect_uri = "https://lab.example.org/oauth2callback"
    cookie_secret = "a long random text"     # python -c "import secrets; print(secrets.token_hex(32))"
    client_id = "scalinglab"
    client_secret = "..."
    server_metadata_url = "https://idp.example.org/.well-known/openid-configuration"
    client_kwargs = { scope = "openid email profile groups" }   # optional

    [roles]
    claim = "groups"                         # the ID-token claim listing a user's groups
    [roles.viewer]
    groups = ["ml-lab"]
    [roles.editor]
    emails = ["eddie@example.org"]
    [roles.admin]
    emails = ["ada@example.org"]

A user gets the highest role whose list names their e-mail (case-insensitive, and only an
e-mail the provider has not marked unverified) or one of their groups; a user on no list
gets none and is refused. No Streamlit import here: `serve` uses it before the child starts.
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from store.errors import BadInputError

Role = Literal["viewer", "editor", "admin"]
ROLE_ORDER: tuple[Role, ...] = ("viewer", "editor", "admin")
ENV_VAR = "SCALINGLAB_AUTH"
REQUIRED_AUTH_KEYS = (
    "redirect_uri",
    "cookie_secret",
    "client_id",
    "client_secret",
    "server_metadata_url",
)
MIN_COOKIE_SECRET = 32
DEFAULT_GROUPS_CLAIM = "groups"
_LIST_KEYS = ("emails", "groups")
SECRET_HINT = 'python -c "import secrets; print(secrets.token_hex(32))"'


@dataclass(frozen=True)
class RoleList:
    """Who holds one role: e-mails (lower-cased) and group names."""

    emails: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Roles:
    """The allow-lists of every role, and the claim that carries a user's groups."""

    lists: Mapping[Role, RoleList]
    groups_claim: str = DEFAULT_GROUPS_CLAIM

    def role_for(self, claims: Mapping[str, Any]) -> Role | None:
        """The highest role the provider's claims earn (None: on no list)."""
        email = claims.get("email")
        verified = claims.get("email_verified", True) is not False
        address = email.strip().lower() if isinstance(email, str) and verified else None
        groups = _as_groups(claims.get(self.groups_claim))
        for role in reversed(ROLE_ORDER):
            allowed = self.lists.get(role, RoleList())
            if (address is not None and address in allowed.emails) or (groups & allowed.groups):
                return role
        return None


def _as_groups(value: Any) -> set[str]:
    """A groups claim (a list, or one name) as a set of names."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, list | tuple):
        return {str(v) for v in value}
    return set()


def parse_roles(section: Any, where: str = "[roles]") -> Roles:
    """`[roles]` as `Roles`; BadInputError naming the first bad key or value."""
    if section is None:
        return Roles(lists={})
    if not isinstance(section, Mapping):
        raise BadInputError(f"{where} must be a table")
    lists: dict[Role, RoleList] = {}
    claim = section.get("claim", DEFAULT_GROUPS_CLAIM)
    if not isinstance(claim, str) or not claim:
        raise BadInputError(f"{where} claim must be a claim name, got {claim!r}")
    for key, value in section.items():
        if key == "claim":
            continue
        if key not in ROLE_ORDER:
            raise BadInputError(
                f"{where} has an unknown key {key!r}; known: claim, {', '.join(ROLE_ORDER)}"
            )
        if not isinstance(value, Mapping):
            raise BadInputError(f"{where[:-1]}.{key}] must be a table with emails and groups")
        unknown = sorted(set(value) - set(_LIST_KEYS))
        if unknown:
            raise BadInputError(
                f"{where[:-1]}.{key}] has unknown key(s) {', '.join(unknown)}; known: emails, groups"
            )
        names: dict[str, frozenset[str]] = {}
        for list_key in _LIST_KEYS:
            items = value.get(list_key, [])
            if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
                raise BadInputError(
                    f"{where[:-1]}.{key}] {list_key} must be a list of names, got {items!r}"
                )
            folded = [i.strip().lower() for i in items] if list_key == "emails" else items
            names[list_key] = frozenset(folded)
        lists[key] = RoleList(emails=names["emails"], groups=names["groups"])  # type: ignore[index]
    return Roles(lists=lists, groups_claim=claim)


def check_auth_section(auth: Any, where: str) -> None:
    """BadInputError unless `auth` has what `st.login` needs, with absolute URLs."""
    if not isinstance(auth, Mapping):
        raise BadInputError(f"{where}: no [auth] section (sign-in needs one)")
    missing = [k for k in REQUIRED_AUTH_KEYS if not isinstance(auth.get(k), str) or not auth[k]]
    if missing:
        raise BadInputError(f"{where}: [auth] lacks {', '.join(missing)}")
    for key in ("redirect_uri", "server_metadata_url"):
        url = urlparse(auth[key].replace("{port}", "1"))
        if url.scheme not in ("http", "https") or not url.netloc:
            raise BadInputError(f"{where}: [auth] {key} must be an absolute http(s) URL")
    if not urlparse(auth["redirect_uri"]).path.endswith("/oauth2callback"):
        raise BadInputError(
            f"{where}: [auth] redirect_uri must end with /oauth2callback (Streamlit's callback)"
        )
    if len(auth["cookie_secret"]) < MIN_COOKIE_SECRET:
        raise BadInputError(
            f"{where}: [auth] cookie_secret is shorter than {MIN_COOKIE_SECRET} characters; "
            f"make one with {SECRET_HINT}"
        )


def check_authlib() -> None:
    """BadInputError unless Authlib (which `st.login` needs) is installed."""
    if importlib.util.find_spec("authlib") is None:
        raise BadInputError(
            "sign-in needs Authlib: pip install 'scalinglab[auth]' (or 'streamlit[auth]')"
        )


def load_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Roles]:
    """Read and check a sign-in file: its `[auth]` section and its roles."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise BadInputError(f"cannot read the sign-in file {file}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise BadInputError(f"the sign-in file {file} is not valid TOML: {err}") from err
    check_auth_section(data.get("auth"), str(file))
    roles = parse_roles(data.get("roles"), where="[roles]")
    if not any(roles.lists.get(r) for r in ROLE_ORDER):
        raise BadInputError(
            f"{file}: [roles] names nobody: add emails or groups to "
            "[roles.viewer], [roles.editor] or [roles.admin]"
        )
    return dict(data["auth"]), roles


def resolve_path(option: str | os.PathLike[str] | None) -> Path | None:
    """The sign-in file: the option, else `$SCALINGLAB_AUTH` (unset or empty: no sign-in)."""
    chosen = option if option is not None else os.environ.get(ENV_VAR) or None
    return Path(chosen).resolve() if chosen is not None else None
