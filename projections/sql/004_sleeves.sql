-- book.sleeves_marked.v1: each strategy's sleeve of a book of several at every day close
-- (kernel.sleeves): its capital, cash, position value and NAV; per day they sum to nav's row.
CREATE TABLE sleeves (
    day           INTEGER NOT NULL, -- YYYYMMDD
    strategy_id   TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    capital_minor INTEGER NOT NULL,
    cash_minor    INTEGER NOT NULL,
    value_minor   INTEGER NOT NULL,
    nav_minor     INTEGER NOT NULL,
    PRIMARY KEY (day, strategy_id)
);

INSERT INTO schema_version (version, name) VALUES (4, '004_sleeves');
