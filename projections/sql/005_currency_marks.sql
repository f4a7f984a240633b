-- book.currencies_marked.v1: a book of several currencies at every day close (kernel.currencies):
-- per currency its cash, position value and NAV in its own minor units, the rate into the base
-- and the NAV in the base (half-even). Per day nav_base_minor sums to nav's row (the base).
CREATE TABLE currency_marks (
    day            INTEGER NOT NULL, -- YYYYMMDD
    currency       TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    base           TEXT NOT NULL,
    rate_e8        INTEGER NOT NULL, -- one unit of currency in base, 1e-8
    cash_minor     INTEGER NOT NULL,
    value_minor    INTEGER NOT NULL,
    nav_minor      INTEGER NOT NULL,
    nav_base_minor INTEGER NOT NULL,
    PRIMARY KEY (day, currency)
);

INSERT INTO schema_version (version, name) VALUES (5, '005_currency_marks');
