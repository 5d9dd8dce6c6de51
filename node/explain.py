"""What ``explaintransaction`` answers (PROTOCOL.md section 8): the check
``testmempoolaccept`` runs, shown step by step.

``explain`` runs ``Mempool.check``, the very check that admits a tx to the
mempool, with a ``chain.trace.Trace``: each rule function records what it
compares as it compares it, so the steps, the verdict and the fee all come
from one run of the production rules against the node's current coins and
mempool. Nothing changes: the tx is not added, the signature cache is not
filled. The answer is bounded whatever the tx (the trace lists at most
``chain.trace.PER_RULE`` passed steps of each rule and counts the rest), so
a 7,000-input tx gives tens of kilobytes, not megabytes.
"""

from chain.errors import RuleError
from chain.trace import Trace
from chain.tx import Tx

from .mempool import Mempool


def explain(mempool: Mempool, tx: Tx) -> dict:
    """``{txid, allowed, reject_reason?, message?, fee?, steps}``: ``message``
    is ``"CODE: sentence"`` like an RPC error's; ``fee`` (units) comes with
    an allowed tx."""
    trace = Trace()
    answer: dict = {"txid": tx.txid.hex()}
    try:
        fee, _, _ = mempool.check(tx, trace)
    except RuleError as error:
        answer.update(allowed=False, reject_reason=error.code, message=str(error))
    else:
        answer.update(allowed=True, fee=fee)
    answer["steps"] = trace.steps()
    return answer
