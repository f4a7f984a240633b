"""Pure model: fixed-point values, instruments, events, orders, ledger, risk rules. No I/O."""
