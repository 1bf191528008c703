-- Voxbridge store, SQLite, version 2: range lookups on date-times.

-- Indexed date-times inside `fields` (see `range::RANGE_FIELDS`), stored in canonical
-- UTC form so text order is time order. Partial on the object type: other objects pay
-- nothing. Entries end with the rowid, so ties come out in `created_ms, seq` order.
CREATE INDEX records_voicecall_start ON records
    (org, json_extract(fields, '$.CallStartDateTime'), created_ms) WHERE sobject = 'VoiceCall';
CREATE INDEX records_voicecall_end ON records
    (org, json_extract(fields, '$.CallEndDateTime'), created_ms) WHERE sobject = 'VoiceCall';
-- LastModifiedDate ranges; CreatedDate ranges use records_org_sobject_created.
CREATE INDEX records_org_sobject_modified ON records (org, sobject, modified_ms, created_ms);
