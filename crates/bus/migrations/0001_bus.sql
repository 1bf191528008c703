-- The embedded bus: streams, their records and consumer-group offsets. All tables are
-- named bus_* so the bus can share a database file with the store.

CREATE TABLE bus_streams (
    name            TEXT PRIMARY KEY,
    created_ms      INTEGER NOT NULL,
    -- The next record's sequence number; never goes back, so trimmed numbers are not reused.
    next_seq        INTEGER NOT NULL,
    -- Arrival times are kept non-decreasing along a stream (AT_TIMESTAMP relies on it).
    last_arrival_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE bus_records (
    stream        TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    partition_key TEXT NOT NULL,
    data          BLOB NOT NULL,
    arrival_ms    INTEGER NOT NULL,
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;

CREATE INDEX bus_records_arrival ON bus_records (stream, arrival_ms);

CREATE TABLE bus_offsets (
    stream     TEXT NOT NULL,
    grp        TEXT NOT NULL,
    -- Every record with a sequence number up to this one is done for the group.
    seq        INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (stream, grp)
) WITHOUT ROWID;
