-- Voxbridge store, PostgreSQL, version 2: range lookups on date-times.

-- Indexed date-times inside `fields` (see `range::RANGE_FIELDS`), stored in canonical
-- UTC form so text order (collation "C") is time order. The indexed value is the JSON
-- text of the string, quotes included; `\u0000` escapes become `\u0020` first because
-- PostgreSQL cannot parse them, and the expression must never fail a write. Partial on
-- the object type: other objects pay nothing.
CREATE INDEX records_voicecall_start ON records
    (org, (((replace(fields, E'\\u0000', E'\\u0020')::json -> 'CallStartDateTime')::text) COLLATE "C"),
     created_ms, seq)
    WHERE sobject = 'VoiceCall';
CREATE INDEX records_voicecall_end ON records
    (org, (((replace(fields, E'\\u0000', E'\\u0020')::json -> 'CallEndDateTime')::text) COLLATE "C"),
     created_ms, seq)
    WHERE sobject = 'VoiceCall';
-- LastModifiedDate ranges; CreatedDate ranges use records_org_sobject_created.
CREATE INDEX records_org_sobject_modified ON records (org, sobject, modified_ms, created_ms, seq);
