"""Amounts: integers of base units everywhere; ``Decimal`` only at the edges.

``1 TOY = 100_000_000 units`` and no amount may exceed ``MAX_MONEY`` (21
million TOY), Bitcoin's numbers. ``format_toy`` shows units to people;
``parse_toy`` reads what people type, refusing floats' imprecision by
construction: ``"0.1"`` is exactly 10,000,000 units.
"""

import decimal
from decimal import Decimal, InvalidOperation

COIN = 100_000_000
MAX_MONEY = 21_000_000 * COIN


def money_range(units: int) -> bool:
    return 0 <= units <= MAX_MONEY


def format_toy(units: int) -> str:
    """``1500000000`` -> ``"15.00000000 TOY"`` (exact, sign kept)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), COIN)
    return f"{sign}{whole}.{frac:08d} TOY"


def parse_toy(text: str) -> int:
    """``"1.5"`` -> ``150000000``. Raises ValueError with a clear sentence for
    anything that is not a plain decimal with at most 8 decimals."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"amount {text!r} is not a finite number")
    if value.copy_abs() > MAX_MONEY // COIN:
        raise ValueError(f"amount {text!r} is more than the 21,000,000 TOY that can exist")
    if value.as_tuple().exponent < -8 and value != value.quantize(Decimal("1e-8"), rounding=decimal.ROUND_DOWN):
        raise ValueError(f"amount {text!r} has more than 8 decimals")
    return int(value.scaleb(8))
