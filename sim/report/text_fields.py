"""Constants of the report's compiled text loops (:mod:`sim.report.text_kernel`), apart from
them so that the writers read them without importing numba."""

from __future__ import annotations

import math

#: a float's status (``float_digits``): nine digits and an exponent, +0.0, -0.0, text from
#: Python (``%``), NaN (an empty field)
DIGITS, ZERO, NEG_ZERO, OTHER, EMPTY = 0, 1, 2, 3, 4
#: a column's kind in ``write_rows``
INT, FLOAT, TEXT = 0, 1, 2
LOG10_2 = math.log10(2.0)
#: bytes past the end of a block's rows that ``write_rows`` may use as scratch
SLACK = 16
#: entries per float column of the loops' tables of digits and texts by bit pattern; a
#: table's empty key (a NaN's bits: a NaN is never formatted) and the hash multiplier
#: (Fibonacci's, 2**64 / golden ratio, as a signed 64-bit integer)
SEEN, NO_VALUE, HASH = 1 << 12, 0x7FF8000000000000, -7046029254386353131
#: bytes a field of each kind may take at most: an int64 (sign and 19 digits), a float
#: (``-1.23456789e+21``)
INT_WIDTH, FLOAT_WIDTH = 20, 15
#: the keys a trace event's fields are written after (``trace_events``), as bytes
STEP_KEY, TID_KEY, TS_KEY, DUR_KEY = (tuple(k.encode()) for k in (',"step":', ',"tid":',
                                                                    ',"ts":', ',"dur":'))
#: and a transfer event's args (``transfer_events``)
BYTES_KEY, REPLICAS_KEY, LAYER_KEY = (tuple(k.encode()) for k in (
    ',"args":{"bytes":', ',"replicas":', ',"layer":'))
