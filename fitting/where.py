"""`--where`: a small, safe filter language over a fit frame's columns.

The project parses the text itself (a tokenizer and a recursive-descent parser) into a
tree of a few node kinds, then evaluates the tree column-wise on a pandas frame. Nothing
is ever handed to ``eval``, SQL or any other interpreter, so a filter can only read the
frame's columns and compute with them.

Grammar (precedence from loose to tight)::

    expr    := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | compare
    compare := sum (OP sum | 'in' '(' literal, ... ')' | 'not' 'in' '(' ... ')')?
               OP one of < <= > >= == != (= is read as ==)
    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/') unary)*
    unary   := '-' unary | power
    power   := atom ('**' unary)?
    atom    := NUMBER | 'text' | "text" | NAME | `any name` | FUNC '(' expr ')' | '(' expr ')'

NAME is a column: a canonical one (``loss``, ``params``, ``tokens``, ``flops``, ``step``,
``run``, ``split``...) or a run fact kept at import (``train_dataset``, ``Lang``); a name
with spaces or other characters is written in backquotes. FUNC is one of ``log``,
``log10``, ``log2``, ``exp``, ``sqrt``, ``abs``. A comparison with a missing value is
false, so a row whose column is empty never passes a filter on it.

Examples: ``loss < 4.5``, ``tokens >= 5*params``, ``train_dataset == 'c4'``,
``split in ('eval', 'eval/en') and not run == 'r3'``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from store.errors import BadInputError

FUNCTIONS = {
    "log": np.log,
    "log10": np.log10,
    "log2": np.log2,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}
COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
KEYWORDS = ("and", "or", "not", "in")
MAX_LENGTH = 2000  # a filter is one line a person writes; refuse anything far longer

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<string>'[^']*'|"[^"]*")
    | (?P<quoted>`[^`]+`)
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<op>\*\*|<=|>=|==|!=|[-+*/<>=(),])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, op, end
    text: str
    pos: int  # 0-based offset in the filter text


@dataclass(frozen=True)
class Node:
    """One node of the parsed tree: ``kind`` and its operands."""

    kind: str  # num, str, col, neg, bin, cmp, in, not, and, or, call
    value: Any = None
    args: tuple[Node, ...] = ()


def _bad(text: str, pos: int, message: str) -> BadInputError:
    pointer = f"{text}\n{' ' * pos}^"
    return BadInputError(f"--where: {message} at position {pos + 1}:\n{pointer}")


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise BadInputError(f"--where: a filter of at most {MAX_LENGTH} characters, please")
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            start = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise _bad(text, start, f"unexpected character {text[start]!r}")
        kind = match.lastgroup or "op"
        raw = match.group(kind)
        start = match.start(kind)
        if kind == "name" and raw.lower() in KEYWORDS:
            kind, raw = "op", raw.lower()
        elif kind == "quoted":
            kind, raw = "name", raw[1:-1]
        out.append(Token(kind, raw, start))
        pos = match.end()
    out.append(Token("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self, *ops: str) -> Token | None:
        if self.tok.kind == "op" and self.tok.text in ops:
            self.i += 1
            return self.tokens[self.i - 1]
        return None

    def expect(self, op: str) -> None:
        if self.take(op) is None:
            raise _bad(self.text, self.tok.pos, f"expected {op!r}, got {self._shown()}")

    def _shown(self) -> str:
        return "the end" if self.tok.kind == "end" else repr(self.tok.text)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise _bad(self.text, 0, "the filter is empty")
        node = self.or_()
        if self.tok.kind != "end":
            raise _bad(self.text, self.tok.pos, f"unexpected {self._shown()}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.take("or"):
            node = Node("or", args=(node, self.and_()))
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.take("and"):
            node = Node("and", args=(node, self.not_()))
        return node

    def not_(self) -> Node:
        if self.take("not"):
            return Node("not", args=(self.not_(),))
        return self.compare()

    def compare(self) -> Node:
        left = self.sum_()
        op = self.take(*COMPARISONS, "=")
        if op is not None:
            name = "==" if op.text == "=" else op.text
            node = Node("cmp", name, (left, self.sum_()))
            if self.tok.kind == "op" and self.tok.text in (*COMPARISONS, "="):
                raise _bad(self.text, self.tok.pos, "chain comparisons with 'and'")
            return node
        negate = False
        if self.tok.kind == "op" and self.tok.text == "not":
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "op" and nxt.text == "in":
                self.i += 1
                negate = True
        if self.take("in"):
            node = Node("in", args=(left, *self.literals()))
            return Node("not", args=(node,)) if negate else node
        return left

    def literals(self) -> list[Node]:
        self.expect("(")
        items = [self.literal()]
        while self.take(","):
            items.append(self.literal())
        self.expect(")")
        return items

    def literal(self) -> Node:
        sign = -1.0 if self.take("-") else 1.0
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            return Node("num", sign * float(tok.text))
        if tok.kind == "string" and sign > 0:
            self.i += 1
            return Node("str", tok.text[1:-1])
        raise _bad(self.text, tok.pos, f"expected a number or a quoted text, got {self._shown()}")

    def sum_(self) -> Node:
        node = self.product()
        while (op := self.take("+", "-")) is not None:
            node = Node("bin", op.text, (node, self.product()))
        return node

    def product(self) -> Node:
        node = self.unary()
        while (op := self.take("*", "/")) is not None:
            node = Node("bin", op.text, (node, self.unary()))
        return node

    def unary(self) -> Node:
        if self.take("-"):
            return Node("neg", args=(self.unary(),))
        if self.take("+"):
            return self.unary()
        return self.power()

    def power(self) -> Node:
        node = self.atom()
        if self.take("**"):
            node = Node("bin", "**", (node, self.unary()))
        return node

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            return Node("num", float(tok.text))
        if tok.kind == "string":
            self.i += 1
            return Node("str", tok.text[1:-1])
        if tok.kind == "name":
            self.i += 1
            if tok.text in FUNCTIONS and self.take("("):
                arg = self.or_()
                self.expect(")")
                return Node("call", tok.text, (arg,))
            return Node("col", tok.text, (Node("num", tok.pos),))
        if self.take("("):
            node = self.or_()
            self.expect(")")
            return node
        raise _bad(self.text, tok.pos, f"expected a value, a column or '(', got {self._shown()}")


def parse(text: str) -> Node:
    """The tree of ``text``; BadInputError pointing at the first mistake."""
    return _Parser(str(text)).parse()


def columns_of(node: Node) -> set[str]:
    """The column names a filter reads."""
    if node.kind == "col":
        return {str(node.value)}
    out: set[str] = set()
    for arg in node.args:
        out |= columns_of(arg)
    return out


def _numeric(values: Any) -> Any:
    if isinstance(values, pd.Series) and not pd.api.types.is_numeric_dtype(values):
        converted = pd.to_numeric(values, errors="coerce")
        if converted.notna().sum() >= values.notna().sum():
            return converted
    return values


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    series = frame[name]
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    return _numeric(series)


def _evaluate(node: Node, frame: pd.DataFrame, text: str) -> Any:
    kind = node.kind
    if kind == "num":
        return float(node.value)
    if kind == "str":
        return str(node.value)
    if kind == "col":
        name = str(node.value)
        if name not in frame.columns:
            known = ", ".join(sorted(map(str, frame.columns)))
            raise _bad(text, int(node.args[0].value), f"no column {name!r} (known: {known})")
        return _column(frame, name)
    if kind == "neg":
        return -_arith(_evaluate(node.args[0], frame, text), text)
    if kind == "call":
        with np.errstate(all="ignore"):
            return FUNCTIONS[str(node.value)](_arith(_evaluate(node.args[0], frame, text), text))
    if kind == "bin":
        left = _arith(_evaluate(node.args[0], frame, text), text)
        right = _arith(_evaluate(node.args[1], frame, text), text)
        with np.errstate(all="ignore"):
            if node.value == "+":
                return left + right
            if node.value == "-":
                return left - right
            if node.value == "*":
                return left * right
            if node.value == "/":
                return left / right
            return left**right
    if kind == "cmp":
        return _compare(str(node.value), *(_evaluate(a, frame, text) for a in node.args))
    if kind == "in":
        values = _evaluate(node.args[0], frame, text)
        options = [_evaluate(a, frame, text) for a in node.args[1:]]
        out = _false(frame)
        for option in options:
            out = out | _compare("==", values, option)
        return out
    if kind == "not":
        return ~_truth(_evaluate(node.args[0], frame, text), frame)
    if kind in ("and", "or"):
        left = _truth(_evaluate(node.args[0], frame, text), frame)
        right = _truth(_evaluate(node.args[1], frame, text), frame)
        return (left & right) if kind == "and" else (left | right)
    raise AssertionError(f"unknown node {kind}")  # the parser makes no other kind


def _arith(value: Any, text: str) -> Any:
    if isinstance(value, str):
        raise BadInputError(f"--where: cannot compute with the text {value!r} in {text!r}")
    if isinstance(value, pd.Series) and not pd.api.types.is_numeric_dtype(value):
        raise BadInputError(
            f"--where: column {value.name!r} holds text; compare it with == or in, "
            f"not arithmetic (in {text!r})"
        )
    return value


def _false(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(False, index=frame.index)


def _truth(value: Any, frame: pd.DataFrame) -> pd.Series:
    if isinstance(value, pd.Series):
        if pd.api.types.is_bool_dtype(value):
            return value.fillna(False).astype(bool)
        numbers = pd.to_numeric(value, errors="coerce")
        return (numbers.notna() & (numbers != 0)).astype(bool)
    if isinstance(value, float | int | np.floating):
        return pd.Series(bool(value) and not math.isnan(float(value)), index=frame.index)
    return pd.Series(bool(value), index=frame.index)


def _compare(op: str, left: Any, right: Any) -> Any:
    # Text against number (a fact stored as text): compare as text, so `Lang == 'de'` and
    # `seed == 1` both work whatever the column's type.
    left_text = isinstance(left, str) or (
        isinstance(left, pd.Series) and not pd.api.types.is_numeric_dtype(left)
    )
    right_text = isinstance(right, str) or (
        isinstance(right, pd.Series) and not pd.api.types.is_numeric_dtype(right)
    )
    if left_text != right_text:
        left, right = _as_text(left), _as_text(right)
        if op not in ("==", "!="):
            raise BadInputError(f"--where: {op} compares numbers, not text")
    missing = _missing(left) | _missing(right)
    with np.errstate(invalid="ignore"):
        if op == "<":
            out = left < right
        elif op == "<=":
            out = left <= right
        elif op == ">":
            out = left > right
        elif op == ">=":
            out = left >= right
        elif op == "==":
            out = left == right
        else:
            out = left != right
    if isinstance(out, pd.Series):
        return (out & ~missing).astype(bool) if isinstance(missing, pd.Series) else out
    return bool(out) and not bool(missing)


def _as_text(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return value.map(lambda v: None if pd.isna(v) else _plain_text(v))
    return _plain_text(value)


def _plain_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return value.isna()
    return value is None or (isinstance(value, float) and math.isnan(value))


def evaluate(text: str, frame: pd.DataFrame) -> pd.Series:
    """The boolean mask of the rows of ``frame`` for which the filter holds."""
    node = parse(text)
    mask = _truth(_evaluate(node, frame, str(text)), frame)
    return mask.reindex(frame.index, fill_value=False)
