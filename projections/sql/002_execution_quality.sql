-- Tape ledger projection, schema version 2: post-trade execution quality.
--
-- Applied after 001 when a ledger is created or rebuilt (the files run in version order;
-- a ledger at version 1 is refused until `tape rebuild` / `tape projections rebuild`).
--
-- One row per parent order: the router's parent (OrderSubmitted.parent_id) or, for an order
-- sent directly, the order itself. Rows are folded by domain/execution/posttrade_fold.py,
-- the same code `tape report` uses; the definitions of the decision, arrival and close
-- prices are in docs/projections.md ("execution_quality"). Money is *_minor of `currency`,
-- positive is a cost; *_e8 are 1e-8 (10000 = 1 bp). A row is updated in place while its
-- parent has open children (status 'open'); the columns up to updated_seq that are not
-- derived (children .. last_fill_px_raw) are the fold's running state.

ALTER TABLE orders ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';  -- '' = sent directly

CREATE TABLE execution_quality (
    parent_id                       TEXT PRIMARY KEY,
    strategy_id                     TEXT NOT NULL,
    instrument_id                   INTEGER NOT NULL,
    currency                        TEXT NOT NULL,
    side                            INTEGER NOT NULL CHECK (side IN (-1, 1)),
    day                             INTEGER NOT NULL,  -- session of the first child; 0 until it closes
    status                          TEXT NOT NULL CHECK (status IN ('open', 'done')),
    children                        INTEGER NOT NULL,
    open_children                   INTEGER NOT NULL,
    intended_qty_raw                INTEGER NOT NULL,  -- sum of the children's quantities
    filled_qty_raw                  INTEGER NOT NULL CHECK (filled_qty_raw BETWEEN 0 AND intended_qty_raw),
    fill_ratio_e8                   INTEGER NOT NULL,
    decision_px_raw                 INTEGER NOT NULL,  -- the first child's decision price
    first_fill_px_raw               INTEGER NOT NULL,  -- 0 without fills
    last_fill_px_raw                INTEGER NOT NULL,
    arrival_px_raw                  INTEGER NOT NULL,  -- first fill, else the decision price
    close_px_raw                    INTEGER NOT NULL,  -- last fill, else the decision price
    filled_notional_minor           INTEGER NOT NULL,  -- sum of the fills' notionals
    intended_notional_minor         INTEGER NOT NULL,  -- intended quantity at the decision price
    decision_notional_minor         INTEGER NOT NULL,  -- filled quantity at the decision price
    arrival_notional_minor          INTEGER NOT NULL,  -- filled quantity at the arrival price
    execution_cost_decision_minor   INTEGER NOT NULL,
    execution_cost_arrival_minor    INTEGER NOT NULL,
    opportunity_cost_decision_minor INTEGER NOT NULL,  -- unfilled x (close - decision)
    opportunity_cost_arrival_minor  INTEGER NOT NULL,  -- unfilled x (close - arrival)
    shortfall_decision_minor        INTEGER NOT NULL,
    shortfall_arrival_minor         INTEGER NOT NULL,
    slippage_decision_e8            INTEGER NOT NULL,
    slippage_arrival_e8             INTEGER NOT NULL,
    first_seq                       INTEGER NOT NULL,  -- seq of the first child's submission
    updated_seq                     INTEGER NOT NULL
);
-- The next day close dates the parents opened since the previous one (day = 0); also the
-- lookup of per-day totals.
CREATE INDEX execution_quality_by_day ON execution_quality (day, parent_id);

INSERT INTO schema_version (version, name) VALUES (2, '002_execution_quality');
