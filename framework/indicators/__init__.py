"""Streaming and batch technical indicators, compiled with Numba.

One module per family: ``moving_averages`` (SMA, EMA, WMA), ``oscillators`` (RSI,
MACD), ``volatility`` (Bollinger bands, ATR, realized volatility), ``rolling``
(minimum, maximum, z-score), ``volume`` (rolling and session VWAP, trade-flow
imbalance), ``book`` (L1 and L2 imbalance and microprice), ``returns`` (log returns),
on top of ``window`` (rolling sums that stay exact).

Every indicator ``<name>`` has three compiled functions:

``<name>_state_nb(params) -> state``
    Allocate its state: one float64 array holding the outputs first, then the
    parameters, counters and ring buffers. Allocate once, outside the hot path.
``<name>_update_nb(state, inputs...) -> output(s)``
    Fold in one observation and return the current output (a tuple for several).
    Compiled with ``framework.jit.HOT``: no allocation, inlined into its caller, so
    it can run inside a strategy's ``on_event``.
``<name>_1d_nb(arrays..., params) -> array(s)``
    The output after each element of the input arrays, for research and training:
    a loop over the same update, so it equals the streaming output bit for bit.

Shared rules (docs/reference/indicators.md has each formula):

* Inputs are float64 in whole units; convert the events' fixed point with
  ``framework.events.INV_PRICE_SCALE``.
* An observation with a non-finite input (NaN, +-inf), or one an indicator cannot
  use (a non-positive price for a log, a non-positive trade size), is a gap: the
  state is untouched and the output is the last one. Windows count valid
  observations only.
* Outputs are NaN until the indicator has seen enough valid observations (its
  warm-up), never after.
* Identical inputs give exact outputs: an average of ``n`` equal prices is that
  price, their standard deviation 0, a z-score 0, an RSI 50, a MACD 0.
"""
