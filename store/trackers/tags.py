"""Which tracker tags are read, and as what: a loss of some split, the LR, tokens or FLOPs.

A tag's role is detected from its name with the CSV importer's aliases (`train/loss`,
`eval/loss`, `val_loss`, `lr`, `learning_rate`, `tokens`...). `--tag TAG[=ROLE]` chooses
the tags instead: a bare `TAG` keeps its detected role (a loss when none is detected), a
ROLE is `lr`, `tokens`, `flops` or a split name (`train`, `eval`, `eval/<family>`).
"""

from __future__ import annotations

from store.errors import BadInputError
from store.importers.aliases import canonical, is_eval_loss, normalise

COLUMNS = ("lr", "tokens", "flops")  # roles that fill a column of the train curve
_PREFIXES = ("train_", "training_", "eval_", "val_", "valid_", "validation_", "test_")


def detect_role(tag: str) -> str | None:
    """'train'/'eval' (a loss of that split), 'lr', 'tokens', 'flops', or None."""
    target = canonical(tag)
    norm = normalise(tag)
    if target in COLUMNS:
        return target
    for prefix in _PREFIXES:  # `train/learning_rate`, `train/tokens`
        if norm.startswith(prefix) and canonical(norm[len(prefix) :]) in COLUMNS:
            return canonical(norm[len(prefix) :])
    if target == "loss" or norm.endswith("loss"):
        return "eval" if is_eval_loss(tag) else "train"
    return None


def parse_tag_options(items: list[str] | None) -> dict[str, str | None] | None:
    """`--tag` values as {tag: role or None (detect)}; None when no `--tag` was given."""
    if not items:
        return None
    chosen: dict[str, str | None] = {}
    for item in items:
        tag, sep, role = item.rpartition("=") if "=" in item else (item, "", "")
        tag, role = tag.strip(), role.strip()
        if not tag or (sep and not role):
            raise BadInputError(f"--tag expects TAG or TAG=ROLE, got {item!r}")
        chosen[tag] = _role_name(role) if role else None
    return chosen


def _role_name(role: str) -> str:
    """`loss` is the train loss, `learning_rate` the lr; any other text is a split."""
    if canonical(role) in COLUMNS:
        return str(canonical(role))
    return "train" if canonical(role) == "loss" and not is_eval_loss(role) else role


def choose_roles(
    tags: dict[str, int], requested: dict[str, str | None] | None, where: str
) -> tuple[dict[str, str], list[str]]:
    """{tag: role} for one run's tags (tag -> number of points), and notes.

    Without `--tag`, two detected tags of one role keep the one with more points (the
    other is named in a note); with `--tag`, a role given twice is refused.
    """
    notes: list[str] = []
    if requested is not None:
        missing = sorted(set(requested) - set(tags))
        if missing:
            raise BadInputError(
                f"no tag {missing[0]!r} in this run; its tags are {sorted(tags)}", file=where
            )
        roles = {tag: role or detect_role(tag) or "train" for tag, role in requested.items()}
        by_role: dict[str, str] = {}
        for tag, role in roles.items():
            if role in by_role:
                raise BadInputError(
                    f"tags {by_role[role]!r} and {tag!r} are both read as {_says(role)}; "
                    "give each --tag its own role",
                    file=where,
                )
            by_role[role] = tag
        return roles, notes
    best: dict[str, str] = {}
    for tag, n in tags.items():
        role = detect_role(tag)
        if role is None:
            continue
        if role in best:
            keep, drop = (tag, best[role]) if n > tags[best[role]] else (best[role], tag)
            notes.append(f"tag {drop!r} left out: {keep!r} is read as {_says(role)} (--tag)")
            best[role] = keep
        else:
            best[role] = tag
    if not any(role not in COLUMNS for role in best):
        raise BadInputError(
            f"no loss tag among {sorted(tags)}; choose one with --tag TAG", file=where
        )
    return {tag: role for role, tag in best.items()}, notes


def _says(role: str) -> str:
    return f"the {role}" if role in COLUMNS else f"the {role} loss"
