-- Tape ledger projection, schema version 1.
--
-- Every table is a projection of the journal and can be rebuilt from seq 0
-- (`tape rebuild`); there are no in-place migrations. A database whose
-- schema_version is older than the newest file in projections/sql/ is rebuilt.
--
-- Units: *_raw are fixed-point integers at the instrument's precision, *_minor
-- are integers in the currency's minor unit, *_e8 are rates in units of 1e-8,
-- ts_ns is event time in UTC nanoseconds, seq is the journal sequence number.
--
-- Secondary indexes are kept to the few lookups by order: every index roughly
-- doubles the insert cost of a large table, and postings/fills are scanned
-- (GROUP BY account / instrument) rather than probed.

CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
    name    TEXT NOT NULL
);

CREATE TABLE checkpoint (
    name TEXT PRIMARY KEY,              -- projection name, e.g. 'ledger'
    seq  INTEGER NOT NULL               -- last journal seq applied (-1: none)
);

CREATE TABLE runs (
    seq            INTEGER PRIMARY KEY, -- seq of run.started
    run_id         TEXT NOT NULL,
    seed           INTEGER NOT NULL,
    engine_version TEXT NOT NULL,
    config_json    TEXT NOT NULL,
    dataset_uri    TEXT,                -- from the dataset.referenced that follows
    content_hash   TEXT,
    finished_seq   INTEGER,             -- from run.finished
    steps          INTEGER,
    nav_minor      INTEGER,
    currency       TEXT
);

CREATE TABLE instruments (
    instrument_id INTEGER PRIMARY KEY,
    symbol        TEXT NOT NULL,
    venue         TEXT NOT NULL,
    asset_class   TEXT NOT NULL,
    currency      TEXT NOT NULL,
    price_digits  INTEGER NOT NULL,
    tick_raw      INTEGER NOT NULL,
    qty_digits    INTEGER NOT NULL,
    lot_raw       INTEGER NOT NULL,
    multiplier    INTEGER NOT NULL,
    defined_seq   INTEGER NOT NULL      -- seq of the last instruments.defined naming it
);

CREATE TABLE orders (
    order_id        TEXT PRIMARY KEY,
    strategy_id     TEXT NOT NULL,
    instrument_id   INTEGER NOT NULL,
    side            INTEGER NOT NULL CHECK (side IN (-1, 1)),
    order_type      TEXT NOT NULL,
    qty_raw         INTEGER NOT NULL CHECK (qty_raw > 0),
    limit_px_raw    INTEGER NOT NULL,
    decision_px_raw INTEGER NOT NULL,
    filled_qty_raw  INTEGER NOT NULL CHECK (filled_qty_raw BETWEEN 0 AND qty_raw),
    status          TEXT NOT NULL,
    submitted_seq   INTEGER NOT NULL,
    updated_seq     INTEGER NOT NULL
);
CREATE INDEX orders_by_status ON orders (status, order_id);

CREATE TABLE order_transitions (
    seq         INTEGER PRIMARY KEY,
    order_id    TEXT NOT NULL,
    from_status TEXT,                   -- NULL for the submission
    to_status   TEXT NOT NULL,
    trigger     TEXT NOT NULL,          -- submit, accept, reject, partial, fill, cancel, expire
    ts_ns       INTEGER NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX order_transitions_by_order ON order_transitions (order_id, seq);

CREATE TABLE fills (
    seq              INTEGER PRIMARY KEY,
    order_id         TEXT NOT NULL,
    instrument_id    INTEGER NOT NULL,
    side             INTEGER NOT NULL CHECK (side IN (-1, 1)),
    fill_qty_raw     INTEGER NOT NULL CHECK (fill_qty_raw > 0),
    fill_px_raw      INTEGER NOT NULL,
    notional_minor   INTEGER NOT NULL,
    commission_minor INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    ts_ns            INTEGER NOT NULL
);

CREATE TABLE positions (
    instrument_id INTEGER PRIMARY KEY,
    qty_raw       INTEGER NOT NULL      -- sum of signed fill quantities; flat rows are removed
);

CREATE TABLE postings (
    seq          INTEGER NOT NULL,      -- seq of the ledger.posted
    line         INTEGER NOT NULL,      -- posting index within the transaction
    txn_id       TEXT NOT NULL,
    account      TEXT NOT NULL,
    currency     TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,      -- debit positive, credit negative
    ts_ns        INTEGER NOT NULL,
    memo         TEXT NOT NULL,
    PRIMARY KEY (seq, line)
);

CREATE TABLE nav (
    day                  INTEGER PRIMARY KEY, -- YYYYMMDD
    ts_ns                INTEGER NOT NULL,
    nav_minor            INTEGER NOT NULL,
    cash_minor           INTEGER NOT NULL,
    gross_exposure_minor INTEGER NOT NULL,
    currency             TEXT NOT NULL
);

CREATE TABLE risk_events (
    seq            INTEGER PRIMARY KEY,
    strategy_id    TEXT NOT NULL,
    step           INTEGER NOT NULL,
    rule           TEXT NOT NULL,
    action         TEXT NOT NULL,
    limit_e8       INTEGER NOT NULL,
    observed_e8    INTEGER NOT NULL,
    instrument_ids TEXT NOT NULL,       -- canonical JSON array, e.g. [1,2]
    detail         TEXT NOT NULL,
    ts_ns          INTEGER NOT NULL
);

INSERT INTO schema_version (version, name) VALUES (1, '001_ledger');
