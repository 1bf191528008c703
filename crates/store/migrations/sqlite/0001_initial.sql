-- Voxbridge store, SQLite, version 1.

-- Every CRM object. `seq` is the insertion order: it breaks ties between records created in
-- the same millisecond and, being an INTEGER PRIMARY KEY (the rowid), survives VACUUM.
-- `id` is UNIQUE, which SQLite stores exactly like a TEXT primary key.
CREATE TABLE records (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    org         TEXT    NOT NULL,
    sobject     TEXT    NOT NULL,
    key         TEXT,
    fields      TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL
);
-- Index entries end with the rowid, so both indexes also deliver `created_ms, seq` order.
CREATE INDEX records_org_sobject_key ON records (org, sobject, key, created_ms);
CREATE INDEX records_org_sobject_created ON records (org, sobject, created_ms);
-- For `orgs()`, which filters on the type alone.
CREATE INDEX records_sobject_created ON records (sobject, created_ms);

-- Transcript utterances: the hot write path. `seq` is the insertion order within equal
-- start times.
CREATE TABLE transcript_entries (
    seq             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL,
    org             TEXT    NOT NULL,
    conversation    TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    vendor_call_key TEXT    NOT NULL,
    sender_type     TEXT    NOT NULL,
    participant_id  TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    UNIQUE (conversation, message_id)
);

-- Claimed JWT ids (replay protection). `claimed_ms` is the `now` of the latest claim; it
-- lets one upsert statement decide "expired at the claimant's now" per row.
CREATE TABLE jti_claims (
    issuer     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    exp_ms     INTEGER NOT NULL,
    claimed_ms INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
) WITHOUT ROWID;
CREATE INDEX jti_claims_exp ON jti_claims (exp_ms);
