"""The deterministic core: journal, step loop, risk and execution stages, snapshots, replay."""
