"""Risk stage: the limits every order passes, the circuit breaker and the kill switch.

Modules, each with one job: ``records`` (the stage's state and limit layouts),
``windows`` (sliding-window counters for throttles and the reject rate),
``breaker`` (circuit breaker states and triggers), ``checks`` (the pre-trade checks),
``control`` (operators' control events) and ``kill_switch`` (what the kill switch
does to orders and positions).
"""
