"""Column names researchers use, mapped onto the canonical curve schema.

Names are compared after normalising (lower case; spaces, dashes, dots and slashes
become underscores), so `Model Size`, `model-size` and `model_size` are the same.
"""

from __future__ import annotations

import re

from store.schema import RUN_FACT_COLUMNS

# canonical name -> aliases (normalised). The canonical name itself always matches.
ALIASES: dict[str, tuple[str, ...]] = {
    "run": ("run", "run_name", "name", "model", "model_name", "experiment", "exp"),
    "step": (
        "step",
        "steps",
        "_step",
        "global_step",
        "iteration",
        "iter",
        "iters",
        "trainer_global_step",
        "train_step",
        "current_steps",
        "current_step",
    ),
    "loss": (
        "loss",
        "train_loss",
        "train_loss_nats",
        "training_loss",
        "val_loss",
        "valid_loss",
        "validation_loss",
        "eval_loss",
        "test_loss",
        "train_lm_loss",
        "lm_loss",
        "ce_loss",
        "cross_entropy",
        "final_loss",
        "val_lm_loss",
    ),
    "lr": ("lr", "learning_rate", "train_lr", "train_learning_rate", "optimizer_lr", "lr_0"),
    "tokens": (
        "tokens",
        "num_tokens",
        "n_tokens",
        "tokens_seen",
        "train_tokens",
        "training_tokens",
        "d",
        "data_size",
        "dataset_size",
    ),
    "flops": (
        "flops",
        "flop",
        "training_flop",
        "training_flops",
        "train_flops",
        "compute",
        "c",
        "total_flops",
    ),
    "params": (
        "params",
        "n_params",
        "num_params",
        "nparams",
        "parameters",
        "n",
        "model_size",
        "size",
        "total_params",
        "param_count",
    ),
    "params_non_embedding": (
        "params_non_embedding",
        "params_no_embed",
        "non_embedding_params",
        "params_nonembedding",
        "n_no_emb",
        "n_non_embedding",
        "nonembedding_params",
    ),
    # Muennighoff et al.'s U_D: the distinct tokens a run's (repeated) training data holds.
    "unique_tokens": (
        "unique_tokens",
        "unique_data",
        "n_unique_tokens",
        "num_unique_tokens",
        "unique_token_count",
        "u_d",
    ),
    "encoder_params": ("encoder_params", "n_e", "ne", "n_encoder", "encoder_size"),
    "decoder_params": ("decoder_params", "n_d", "nd", "n_decoder", "decoder_size"),
    "split": ("split", "val_data", "eval_set", "eval_dataset", "validation_set", "subset"),
    "family": ("family", "language_family", "lang_family"),
    "sampling_ratio": ("sampling_ratio", "sampling_rate", "mix_ratio", "mixture_ratio", "ratio"),
}
# Prefixes researchers put before metric names (W&B "train/loss" becomes "train_loss").
_EVAL_LOSS = ("val_loss", "valid_loss", "validation_loss", "eval_loss", "test_loss", "val_lm_loss")

NUMERIC = frozenset(
    {
        "step",
        "loss",
        "lr",
        "tokens",
        "flops",
        "params",
        "params_non_embedding",
        "encoder_params",
        "decoder_params",
        "unique_tokens",
        "sampling_ratio",
    }
)
TEXT = frozenset({"run", "split", "family"})
# The run facts a file's columns can carry (the rest of store.schema.RUN_FACT_COLUMNS are
# the store's own: status, source, schedule...).
RUN_FACTS = (
    "params",
    "params_non_embedding",
    "encoder_params",
    "decoder_params",
    "unique_tokens",
    "family",
    "sampling_ratio",
)
INTEGER_FACTS = frozenset(f for f in RUN_FACTS if RUN_FACT_COLUMNS[f] == "BIGINT")

_LOOKUP = {alias: canon for canon, names in ALIASES.items() for alias in (canon, *names)}


def normalise(name: str) -> str:
    """`Model Size` -> `model_size`, `train/loss` -> `train_loss`."""
    return re.sub(r"[\s\-./]+", "_", name.strip().lower()).strip("_")


def canonical(name: str) -> str | None:
    """The canonical column a header name stands for, or None."""
    return _LOOKUP.get(normalise(name))


def is_eval_loss(name: str) -> bool:
    """True for loss aliases that mean a held-out loss (`val_loss`, `eval/loss`, ...)."""
    norm = normalise(name)
    return norm in _EVAL_LOSS or norm.startswith(("val_", "valid_", "eval_", "test_"))


def map_columns(
    header: list[str], user: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Map file columns to canonical names: {file column: canonical}, plus warnings.

    The user's mapping wins; then an exact canonical name; then the first alias.
    Columns that map to nothing, or to a name already taken, are ignored and reported.
    """
    from store.errors import BadInputError

    user = user or {}
    for source, target in user.items():
        if source not in header:
            raise BadInputError(f"mapping names column {source!r}, which is not in the header")
        if target not in ALIASES:
            raise BadInputError(
                f"mapping sends {source!r} to {target!r}; expected one of {sorted(ALIASES)}"
            )
    mapping: dict[str, str] = dict(user)
    taken = set(user.values())
    # Exact canonical names first, so `loss` beats `val_loss` when both are present.
    ordered = sorted(header, key=lambda h: (normalise(h) not in ALIASES, header.index(h)))
    warnings: list[str] = []
    ignored: list[str] = []
    for column in ordered:
        if column in mapping:
            continue
        target = canonical(column)
        if target is None:
            ignored.append(column)
        elif target in taken:
            warnings.append(f"column {column!r} also looks like {target!r}; ignored")
        else:
            mapping[column] = target
            taken.add(target)
    renamed = [f"{s!r} -> {t!r}" for s, t in mapping.items() if s != t]
    if renamed:
        warnings.insert(0, "mapped columns: " + ", ".join(renamed))
    if ignored:
        warnings.append("ignored columns: " + ", ".join(repr(c) for c in sorted(ignored)))
    return mapping, warnings
