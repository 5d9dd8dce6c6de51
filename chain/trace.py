"""The recorder that turns the validator into a glass box.

``explaintransaction`` (PROTOCOL.md section 8) answers with every check the
node runs on a transaction, in order, with the values each one compared.
Those steps are not a description of the rules written a second time: the
rule functions of ``chain/tx_rules.py`` and ``Mempool.check`` take an
optional ``trace`` (a ``Trace``, default None) and, right where they compare
something, record the rule in words, the function that holds it and the
values. So a rule that changes changes its trace with it.

With no trace (the node's every other path) each rule pays one ``trace is
not None`` test per record site and builds nothing.

A rule records a passed step with ``trace.passed(rule, function, values)``;
it raises ``rejection(trace, rule, function, values, code, message)``, the
``RuleError`` recorded as the failing step. Values are plain Python: integers (amounts in units, heights),
``bool``, ``str``, an ``OutPoint`` (shown "txid:index"), ``Address`` (an
owner, shown as its address) or other ``bytes`` (shown as hex). They are
converted to JSON only by ``steps()``, for the steps kept.

Bounded: a rule checked once per input or output (a 7,000-input tx has
7,000 of each) lists its first ``per_rule`` passed steps; the rest are
counted in one extra step of that rule, ``{"unlisted": n}``, at the place
the first unlisted one would have stood. A failure is always listed (it is
the last step: a rule raises at its first failure).
"""

from .address import encode_address
from .errors import RuleError
from .tx import OutPoint

PER_RULE = 10  # passed steps listed per rule; the others are counted


class Address(bytes):
    """An owner (the 20 bytes an output is locked to), shown as its address."""


def _json(value):
    if isinstance(value, Address):
        return encode_address(value)
    if isinstance(value, OutPoint):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def rejection(trace: "Trace | None", rule: str, function, values: dict, code: str,
              message: str) -> RuleError:
    """The ``RuleError(code, message)`` a rule raises, recorded first as the
    failing step of ``trace`` (if any)."""
    error = RuleError(code, message)
    if trace is not None:
        trace.failed(rule, function, values, error)
    return error


def function_name(function) -> str:
    """``chain.tx_rules.check_tx_inputs``, ``node.mempool.Mempool.check``."""
    return f"{function.__module__}.{function.__qualname__}"


class Trace:
    """The steps one check of one transaction went through (see the module docstring)."""

    def __init__(self, per_rule: int = PER_RULE):
        self.per_rule = per_rule
        self._steps: list[dict] = []
        self._listed: dict[str, int] = {}       # rule -> passed steps listed
        self._unlisted: dict[str, dict] = {}    # rule -> its "unlisted" step

    def passed(self, rule: str, function, values: dict) -> None:
        listed = self._listed.get(rule, 0)
        if listed < self.per_rule:
            self._listed[rule] = listed + 1
            self._steps.append({"rule": rule, "function": function, "ok": True, "values": values})
            return
        folded = self._unlisted.get(rule)
        if folded is None:
            folded = self._unlisted[rule] = {"rule": rule, "function": function, "ok": True,
                                             "values": {"unlisted": 0}}
            self._steps.append(folded)
        folded["values"]["unlisted"] += 1

    def failed(self, rule: str, function, values: dict, error: RuleError) -> None:
        self._steps.append({"rule": rule, "function": function, "ok": False, "values": values,
                            "reject_reason": error.code})

    def __len__(self) -> int:
        return len(self._steps)

    def steps(self) -> list[dict]:
        """The steps as JSON: ``{rule, function, ok, values, reject_reason?}``."""
        return [{**step, "function": function_name(step["function"]),
                 "values": {key: _json(value) for key, value in step["values"].items()}}
                for step in self._steps]
