-- risk.verdict.v2: a verdict's numbers are in its rule's unit (1e-8 of NAV, minor units, raw
-- quantity, 1e-8 of price), with the measure after the rule acted and the breaching groups.
-- Verdicts upcast from v1 have unit e8_nav and observed_after -1 (not recorded).
ALTER TABLE risk_events RENAME COLUMN limit_e8 TO limit_value;
ALTER TABLE risk_events RENAME COLUMN observed_e8 TO observed;
ALTER TABLE risk_events ADD COLUMN unit TEXT NOT NULL DEFAULT 'e8_nav';
ALTER TABLE risk_events ADD COLUMN observed_after INTEGER NOT NULL DEFAULT -1;
ALTER TABLE risk_events ADD COLUMN group_ids TEXT NOT NULL DEFAULT '[]';

INSERT INTO schema_version (version, name) VALUES (3, '003_risk_verdict_v2');
