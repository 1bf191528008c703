-- Voxbridge store, PostgreSQL, version 1.

-- Every CRM object. `fields` is JSON kept as TEXT (not jsonb) so field order survives a
-- round trip. `seq` is the insertion order: it breaks ties between records created in the
-- same millisecond.
CREATE TABLE records (
    id          TEXT   PRIMARY KEY,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    org         TEXT   NOT NULL,
    sobject     TEXT   NOT NULL,
    key         TEXT,
    fields      TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL
);
CREATE INDEX records_org_sobject_key ON records (org, sobject, key, created_ms, seq);
CREATE INDEX records_org_sobject_created ON records (org, sobject, created_ms, seq);
-- For `orgs()`, which filters on the type alone.
CREATE INDEX records_sobject_created ON records (sobject, created_ms, seq);

-- Transcript utterances: the hot write path. `seq` is the insertion order within equal
-- start times.
CREATE TABLE transcript_entries (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT   NOT NULL,
    org             TEXT   NOT NULL,
    conversation    TEXT   NOT NULL,
    message_id      TEXT   NOT NULL,
    vendor_call_key TEXT   NOT NULL,
    sender_type     TEXT   NOT NULL,
    participant_id  TEXT   NOT NULL,
    content         TEXT   NOT NULL,
    start_ms        BIGINT NOT NULL,
    end_ms          BIGINT NOT NULL,
    created_ms      BIGINT NOT NULL,
    UNIQUE (conversation, message_id)
);

-- Claimed JWT ids (replay protection). `claimed_ms` is the `now` of the latest claim; it
-- lets one upsert statement decide "expired at the claimant's now" per row.
CREATE TABLE jti_claims (
    issuer     TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    exp_ms     BIGINT NOT NULL,
    claimed_ms BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX jti_claims_exp ON jti_claims (exp_ms);
