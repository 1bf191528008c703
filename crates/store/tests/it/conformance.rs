//! The conformance suite: what every `Store` backend must do. Each function gets a fresh,
//! empty store; `main.rs` runs each one on every backend.

use serde_json::{json, Value};
use std::sync::Arc;
use voxbridge_core::{Fields, KeyPrefix, Record, SfId, TranscriptEntry};
use voxbridge_store::{Store, StoreError, WriteOp, WriteOutcome};

pub fn id(prefix: KeyPrefix) -> SfId {
    SfId::generate(prefix, &mut rand::thread_rng())
}

pub fn fields(value: Value) -> Fields {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

pub fn voice_call(org: &SfId, key: &str, created_ms: i64) -> Record {
    let mut r =
        Record::new(id(KeyPrefix::VoiceCall), org.clone(), "VoiceCall", Some(key.to_string()), created_ms);
    r.set("VendorCallKey", key);
    r.set("CallType", "Inbound");
    r
}

pub fn entry(org: &SfId, conversation: &SfId, message_id: &str, start_ms: i64) -> TranscriptEntry {
    TranscriptEntry {
        id: id(KeyPrefix::ConversationEntry),
        org: org.clone(),
        conversation: conversation.clone(),
        message_id: message_id.to_string(),
        vendor_call_key: "vck-1".into(),
        sender_type: "HumanAgent".into(),
        participant_id: "agent-1".into(),
        content: format!("utterance {message_id} – with ünïcode and \"quotes\""),
        start_ms,
        end_ms: start_ms + 500,
        created_ms: 1_700_000_000_000,
    }
}

fn ids(records: &[Record]) -> Vec<SfId> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn message_ids(entries: &[TranscriptEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.message_id.as_str()).collect()
}

pub async fn insert_get_duplicate(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let other_org = id(KeyPrefix::Organization);
    let mut call = voice_call(&org, "vck-1", 1_000);
    call.fields.insert("Nothing".into(), Value::Null);
    call.set("DurationInSeconds", 42);
    call.set("IsRecorded", true);
    call.set("Ratio", 0.5);
    s.insert(call.clone()).await.unwrap();

    assert_eq!(s.get(&org, &call.id).await.unwrap(), Some(call.clone()));
    assert_eq!(s.get(&other_org, &call.id).await.unwrap(), None, "get is scoped by org");
    assert_eq!(s.get(&org, &id(KeyPrefix::VoiceCall)).await.unwrap(), None);

    let mut again = call.clone();
    again.set("CallType", "Outbound");
    match s.insert(again).await {
        Err(StoreError::Duplicate(dup)) => assert_eq!(dup, call.id),
        other => panic!("expected Duplicate, got {other:?}"),
    }
    // The same id in another org is still the same id.
    let mut elsewhere = call.clone();
    elsewhere.org = other_org.clone();
    assert!(matches!(s.insert(elsewhere).await, Err(StoreError::Duplicate(_))));
    assert_eq!(s.get(&org, &call.id).await.unwrap(), Some(call.clone()), "a duplicate changes nothing");
    assert_eq!(s.get(&other_org, &call.id).await.unwrap(), None);

    let keyless = Record::new(id(KeyPrefix::Group), org.clone(), "Group", None, 5);
    s.insert(keyless.clone()).await.unwrap();
    assert_eq!(s.get(&org, &keyless.id).await.unwrap(), Some(keyless));
}

pub async fn update_merges_fields(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let mut call = voice_call(&org, "vck-1", 1_000);
    call.fields = fields(json!({"A": 1, "B": "x", "C": true}));
    s.insert(call.clone()).await.unwrap();

    let patch = fields(json!({"B": "y", "C": null, "D": 2.5}));
    assert!(s.update(&org, &call.id, patch, 2_000).await.unwrap());
    let got = s.get(&org, &call.id).await.unwrap().unwrap();
    assert_eq!(Value::Object(got.fields.clone()), json!({"A": 1, "B": "y", "C": null, "D": 2.5}));
    let order: Vec<&str> = got.fields.keys().map(String::as_str).collect();
    assert_eq!(order, ["A", "B", "C", "D"], "existing fields keep their place, new ones go last");
    assert_eq!(got.created_ms, 1_000);
    assert_eq!(got.modified_ms, 2_000);
    assert_eq!(got.key.as_deref(), Some("vck-1"));
    assert_eq!(got.sobject, "VoiceCall");

    // An empty patch still touches modified_ms.
    assert!(s.update(&org, &call.id, Fields::new(), 3_000).await.unwrap());
    assert_eq!(s.get(&org, &call.id).await.unwrap().unwrap().modified_ms, 3_000);
}

pub async fn update_missing_or_other_org(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let other_org = id(KeyPrefix::Organization);
    let call = voice_call(&org, "vck-1", 1_000);
    s.insert(call.clone()).await.unwrap();

    let patch = fields(json!({"CallType": "Outbound"}));
    assert!(!s.update(&org, &id(KeyPrefix::VoiceCall), patch.clone(), 2_000).await.unwrap());
    assert!(!s.update(&other_org, &call.id, patch.clone(), 2_000).await.unwrap(), "update is scoped by org");
    assert_eq!(s.get(&org, &call.id).await.unwrap(), Some(call.clone()));

    let out = s
        .apply(vec![WriteOp::Update { org: other_org, id: call.id.clone(), patch, now_ms: 2_000 }])
        .await
        .unwrap();
    assert_eq!(out, [WriteOutcome::Missing]);
}

pub async fn delete_records(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let other_org = id(KeyPrefix::Organization);
    let call = voice_call(&org, "vck-1", 1_000);
    s.insert(call.clone()).await.unwrap();

    let out = s.apply(vec![WriteOp::Delete { org: other_org, id: call.id.clone() }]).await.unwrap();
    assert_eq!(out, [WriteOutcome::Missing], "delete is scoped by org");
    assert!(s.get(&org, &call.id).await.unwrap().is_some());

    let out = s.apply(vec![WriteOp::Delete { org: org.clone(), id: call.id.clone() }]).await.unwrap();
    assert_eq!(out, [WriteOutcome::Deleted]);
    assert_eq!(s.get(&org, &call.id).await.unwrap(), None);
    assert!(s.find_by_key(&org, "VoiceCall", "vck-1").await.unwrap().is_empty());

    let out = s.apply(vec![WriteOp::Delete { org: org.clone(), id: call.id.clone() }]).await.unwrap();
    assert_eq!(out, [WriteOutcome::Missing]);

    // The id is free again.
    s.insert(call.clone()).await.unwrap();
    assert_eq!(s.get(&org, &call.id).await.unwrap(), Some(call));
}

pub async fn apply_mixed_ops(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let conversation =
        Record::new(id(KeyPrefix::Conversation), org.clone(), "Conversation", Some("vck-1".into()), 10);
    let call = voice_call(&org, "vck-1", 10);
    let out = s
        .apply(vec![
            WriteOp::Insert(conversation.clone()),
            WriteOp::Insert(call.clone()),
            // Later ops see earlier ones of the same batch.
            WriteOp::Update {
                org: org.clone(),
                id: call.id.clone(),
                patch: fields(json!({"ConversationId": conversation.id.as_str()})),
                now_ms: 20,
            },
            WriteOp::Delete { org: org.clone(), id: conversation.id.clone() },
            WriteOp::Delete { org: org.clone(), id: id(KeyPrefix::Conversation) },
            WriteOp::Update {
                org: org.clone(),
                id: id(KeyPrefix::VoiceCall),
                patch: Fields::new(),
                now_ms: 20,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        out,
        [
            WriteOutcome::Inserted,
            WriteOutcome::Inserted,
            WriteOutcome::Updated,
            WriteOutcome::Deleted,
            WriteOutcome::Missing,
            WriteOutcome::Missing,
        ]
    );
    assert_eq!(s.get(&org, &conversation.id).await.unwrap(), None);
    let got = s.get(&org, &call.id).await.unwrap().unwrap();
    assert_eq!(got.str("ConversationId"), Some(conversation.id.as_str()));
    assert_eq!(got.modified_ms, 20);
}

pub async fn failing_apply_is_atomic(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let existing = voice_call(&org, "vck-existing", 1);
    s.insert(existing.clone()).await.unwrap();

    let fresh = voice_call(&org, "vck-fresh", 2);
    let result = s
        .apply(vec![
            WriteOp::Insert(fresh.clone()),
            WriteOp::Update {
                org: org.clone(),
                id: existing.id.clone(),
                patch: fields(json!({"CallType": "Transfer"})),
                now_ms: 3,
            },
            WriteOp::Insert(fresh.clone()),
        ])
        .await;
    assert!(matches!(result, Err(StoreError::Duplicate(ref d)) if *d == fresh.id), "got {result:?}");
    assert_eq!(s.get(&org, &fresh.id).await.unwrap(), None, "nothing of a failed batch is visible");
    assert!(s.find_by_key(&org, "VoiceCall", "vck-fresh").await.unwrap().is_empty());
    assert_eq!(s.get(&org, &existing.id).await.unwrap(), Some(existing.clone()), "the update was undone");

    // The store still works afterwards.
    s.insert(fresh.clone()).await.unwrap();
    assert_eq!(s.get(&org, &fresh.id).await.unwrap(), Some(fresh));
}

pub async fn empty_writes(s: Arc<dyn Store>) {
    assert_eq!(s.apply(Vec::new()).await.unwrap(), []);
    assert_eq!(s.append_entries(Vec::new()).await.unwrap(), Vec::<bool>::new());
}

pub async fn find_by_key_order_and_org_isolation(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let other_org = id(KeyPrefix::Organization);
    let late = voice_call(&org, "K", 300);
    let early = voice_call(&org, "K", 100);
    let middle_first = voice_call(&org, "K", 200);
    let middle_second = voice_call(&org, "K", 200);
    let foreign = voice_call(&other_org, "K", 50);
    let other_key = voice_call(&org, "K2", 150);
    let other_type =
        Record::new(id(KeyPrefix::Conversation), org.clone(), "Conversation", Some("K".into()), 60);
    for r in [&late, &early, &middle_first, &foreign, &other_key, &other_type] {
        s.insert((*r).clone()).await.unwrap();
    }
    s.insert(middle_second.clone()).await.unwrap();

    let found = s.find_by_key(&org, "VoiceCall", "K").await.unwrap();
    assert_eq!(
        ids(&found),
        ids(&[early.clone(), middle_first.clone(), middle_second.clone(), late.clone()]),
        "oldest first; equal creation times in insertion order"
    );
    assert_eq!(found[0], early);
    assert_eq!(ids(&s.find_by_key(&other_org, "VoiceCall", "K").await.unwrap()), vec![foreign.id.clone()]);
    assert_eq!(ids(&s.find_by_key(&org, "Conversation", "K").await.unwrap()), vec![other_type.id.clone()]);
    assert!(s.find_by_key(&org, "VoiceCall", "k").await.unwrap().is_empty(), "keys are case-sensitive");
    assert!(s.find_by_key(&id(KeyPrefix::Organization), "VoiceCall", "K").await.unwrap().is_empty());
}

pub async fn list_is_scoped_and_ordered(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let other_org = id(KeyPrefix::Organization);
    let b = voice_call(&org, "b", 20);
    let a = voice_call(&org, "a", 10);
    let c = voice_call(&org, "c", 30);
    s.insert(b.clone()).await.unwrap();
    s.insert(a.clone()).await.unwrap();
    s.insert(c.clone()).await.unwrap();
    s.insert(voice_call(&other_org, "x", 5)).await.unwrap();
    s.insert(Record::new(id(KeyPrefix::Group), org.clone(), "Group", Some("Q".into()), 1)).await.unwrap();

    assert_eq!(s.list(&org, "VoiceCall").await.unwrap(), [a, b, c]);
    assert_eq!(s.list(&other_org, "VoiceCall").await.unwrap().len(), 1);
    assert_eq!(s.list(&org, "Group").await.unwrap().len(), 1);
    assert!(s.list(&org, "Case").await.unwrap().is_empty());
}

/// A VoiceCall started at `start` (stored as given) and created at `created_ms`.
fn started(org: &SfId, key: &str, start: Value, created_ms: i64) -> Record {
    let mut r = voice_call(org, key, created_ms);
    r.fields.insert("CallStartDateTime".into(), start);
    r
}

fn keys(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.key.as_deref().unwrap_or("")).collect()
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00.000Z

pub async fn find_range_bounds_order_and_scope(s: Arc<dyn Store>) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let org = id(KeyPrefix::Organization);
    let other_org = id(KeyPrefix::Organization);
    let at = |sec: i64| Value::String(voxbridge_core::time::format_ms(T0 + sec * 1000));
    for r in [
        started(&org, "s3", at(3), 10),
        started(&org, "s1", at(1), 20),
        // Same start as s1, created earlier: ties come out oldest first.
        started(&org, "s1-older", at(1), 5),
        // Other forms of a date-time are stored canonically, so they order by time.
        started(&org, "s2-offset", json!("2026-01-01T02:00:02+02:00"), 30),
        started(&org, "s4-no-fraction", json!("2026-01-01T00:00:04Z"), 40),
        started(&org, "s0-epoch-ms", json!(T0), 50),
        started(&org, "null", Value::Null, 60),
        started(&org, "not-a-date", json!("soon"), 70),
        voice_call(&org, "missing", 80),
        started(&other_org, "foreign", at(2), 90),
    ] {
        s.insert(r).await.unwrap();
    }
    let mut case = Record::new(id(KeyPrefix::Case), org.clone(), "Case", Some("c".into()), 1);
    case.set("CallStartDateTime", voxbridge_core::time::format_ms(T0 + 2000));
    s.insert(case).await.unwrap();

    let range = |lo, hi, limit| {
        let s = s.clone();
        let org = org.clone();
        async move { s.find_range(&org, "VoiceCall", "CallStartDateTime", lo, hi, limit).await.unwrap() }
    };
    let ms = |sec: i64| T0 + sec * 1000;
    let all = range(Unbounded, Unbounded, None).await;
    assert_eq!(
        keys(&all),
        ["s0-epoch-ms", "s1-older", "s1", "s2-offset", "s3", "s4-no-fraction"],
        "ordered by the field then oldest first; null, missing and non-date values left out"
    );
    assert_eq!(all[3].str("CallStartDateTime"), Some("2026-01-01T00:00:02.000Z"));
    assert_eq!(all[0].str("CallStartDateTime"), Some("2026-01-01T00:00:00.000Z"));
    assert_eq!(keys(&range(Included(ms(1)), Excluded(ms(3)), None).await), ["s1-older", "s1", "s2-offset"]);
    assert_eq!(keys(&range(Excluded(ms(1)), Included(ms(3)), None).await), ["s2-offset", "s3"]);
    assert_eq!(keys(&range(Included(ms(3)), Unbounded, None).await), ["s3", "s4-no-fraction"]);
    assert_eq!(keys(&range(Unbounded, Excluded(ms(1)), None).await), ["s0-epoch-ms"]);
    assert_eq!(keys(&range(Unbounded, Included(ms(1)), Some(2)).await), ["s0-epoch-ms", "s1-older"]);
    assert_eq!(keys(&range(Excluded(ms(4)), Unbounded, None).await), Vec::<&str>::new());
    assert_eq!(keys(&range(Included(ms(2) + 1), Excluded(ms(3)), None).await), Vec::<&str>::new());
    assert_eq!(keys(&range(Included(i64::MIN), Included(i64::MAX), Some(1)).await), ["s0-epoch-ms"]);
    assert!(range(Included(i64::MAX), Unbounded, None).await.is_empty());
    assert!(range(Unbounded, Excluded(i64::MIN), None).await.is_empty());
    assert!(range(Included(ms(3)), Excluded(ms(1)), None).await.is_empty());
    let foreign = s.find_range(&other_org, "VoiceCall", "CallStartDateTime", Unbounded, Unbounded, None);
    assert_eq!(keys(&foreign.await.unwrap()), ["foreign"]);
    let nobody = id(KeyPrefix::Organization);
    let nobody = s.find_range(&nobody, "VoiceCall", "CallStartDateTime", Unbounded, Unbounded, None);
    assert!(nobody.await.unwrap().is_empty());

    assert!(matches!(
        s.find_range(&org, "VoiceCall", "CallType", Unbounded, Unbounded, None).await,
        Err(StoreError::Database(_))
    ));
    assert!(matches!(
        s.find_range(&org, "Case", "CallStartDateTime", Unbounded, Unbounded, None).await,
        Err(StoreError::Database(_))
    ));
}

pub async fn find_range_follows_updates_and_timestamps(s: Arc<dyn Store>) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let org = id(KeyPrefix::Organization);
    let a = voice_call(&org, "a", 100);
    let b = voice_call(&org, "b", 200);
    let c = voice_call(&org, "c", 300);
    for r in [&a, &b, &c] {
        s.insert((*r).clone()).await.unwrap();
    }
    let end = |s: Arc<dyn Store>, org: SfId| async move {
        s.find_range(&org, "VoiceCall", "CallEndDateTime", Unbounded, Unbounded, None).await.unwrap()
    };
    assert!(end(s.clone(), org.clone()).await.is_empty());
    // An update in another form is stored canonically and enters the index.
    assert!(s
        .update(&org, &b.id, fields(json!({"CallEndDateTime": "2026-01-01T01:00:00+01:00"})), 1_000)
        .await
        .unwrap());
    assert!(s
        .update(&org, &a.id, fields(json!({"CallEndDateTime": "2026-01-01T00:00:01Z"})), 2_000)
        .await
        .unwrap());
    let ended = end(s.clone(), org.clone()).await;
    assert_eq!(keys(&ended), ["b", "a"]);
    assert_eq!(ended[0].str("CallEndDateTime"), Some("2026-01-01T00:00:00.000Z"));
    // Setting it back to null takes the record out.
    assert!(s.update(&org, &b.id, fields(json!({"CallEndDateTime": null})), 3_000).await.unwrap());
    assert_eq!(keys(&end(s.clone(), org.clone()).await), ["a"]);
    s.apply(vec![WriteOp::Delete { org: org.clone(), id: a.id.clone() }]).await.unwrap();
    assert!(end(s.clone(), org.clone()).await.is_empty());

    // CreatedDate and LastModifiedDate are the record's timestamps, on every object.
    let created =
        s.find_range(&org, "VoiceCall", "CreatedDate", Excluded(100), Included(300), None).await.unwrap();
    assert_eq!(keys(&created), ["b", "c"]);
    let created =
        s.find_range(&org, "VoiceCall", "CreatedDate", Unbounded, Unbounded, Some(1)).await.unwrap();
    assert_eq!(keys(&created), ["b"]);
    let modified =
        s.find_range(&org, "VoiceCall", "LastModifiedDate", Included(1_000), Unbounded, None).await.unwrap();
    assert_eq!(keys(&modified), ["b"]);
    let modified =
        s.find_range(&org, "VoiceCall", "LastModifiedDate", Unbounded, Excluded(1_000), None).await.unwrap();
    assert_eq!(keys(&modified), ["c"]);
    assert!(s.find_range(&org, "Case", "CreatedDate", Unbounded, Unbounded, None).await.unwrap().is_empty());
}

pub async fn orgs_lists_organizations(s: Arc<dyn Store>) {
    assert!(s.orgs().await.unwrap().is_empty());
    let first = id(KeyPrefix::Organization);
    let second = id(KeyPrefix::Organization);
    let mut org2 = Record::new(second.clone(), second.clone(), "Organization", None, 200);
    org2.set("Name", "Second");
    let mut org1 = Record::new(first.clone(), first.clone(), "Organization", None, 100);
    org1.set("Name", "First");
    s.insert(org2.clone()).await.unwrap();
    s.insert(org1.clone()).await.unwrap();
    // Not organizations: another type in the org, and an Organization row owned by another org.
    s.insert(voice_call(&first, "k", 1)).await.unwrap();
    s.insert(Record::new(id(KeyPrefix::Organization), first.clone(), "Organization", None, 1)).await.unwrap();

    assert_eq!(s.orgs().await.unwrap(), [org1, org2]);
}

pub async fn append_dedupes_within_and_across_calls(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let conv = id(KeyPrefix::Conversation);
    let first_m1 = entry(&org, &conv, "m1", 300);
    let mut second_m1 = entry(&org, &conv, "m1", 50);
    second_m1.content = "a different text".into();
    let stored = s
        .append_entries(vec![first_m1.clone(), entry(&org, &conv, "m2", 100), second_m1.clone()])
        .await
        .unwrap();
    assert_eq!(stored, [true, true, false], "the second m1 of one call is a duplicate");

    let stored = s
        .append_entries(vec![second_m1, entry(&org, &conv, "m3", 200), entry(&org, &conv, "m2", 1)])
        .await
        .unwrap();
    assert_eq!(stored, [false, true, false], "m1 and m2 were stored by the first call");

    // The same message id in another conversation is a different message.
    let other_conv = id(KeyPrefix::Conversation);
    assert_eq!(s.append_entries(vec![entry(&org, &other_conv, "m1", 0)]).await.unwrap(), [true]);

    let got = s.entries(&org, &conv).await.unwrap();
    assert_eq!(message_ids(&got), ["m2", "m3", "m1"]);
    assert_eq!(got[2], first_m1, "a duplicate leaves the stored entry unchanged");
    assert_eq!(s.entries(&org, &other_conv).await.unwrap().len(), 1);
}

pub async fn entries_order_and_scope(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let conv = id(KeyPrefix::Conversation);
    // Equal start times keep insertion order, across calls too.
    s.append_entries(vec![entry(&org, &conv, "c", 500), entry(&org, &conv, "a", 100)]).await.unwrap();
    s.append_entries(vec![entry(&org, &conv, "b", 100), entry(&org, &conv, "z", 0)]).await.unwrap();
    s.append_entries(vec![entry(&org, &conv, "d", 500)]).await.unwrap();
    let got = s.entries(&org, &conv).await.unwrap();
    assert_eq!(message_ids(&got), ["z", "a", "b", "c", "d"]);
    assert_eq!(got[1], {
        let mut e = entry(&org, &conv, "a", 100);
        e.id = got[1].id.clone();
        e
    });

    assert!(
        s.entries(&id(KeyPrefix::Organization), &conv).await.unwrap().is_empty(),
        "entries are scoped by org"
    );
    assert!(s.entries(&org, &id(KeyPrefix::Conversation)).await.unwrap().is_empty());
}

pub async fn edit_entries_replaces_text(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let conv = id(KeyPrefix::Conversation);
    s.append_entries(vec![entry(&org, &conv, "a", 100), entry(&org, &conv, "b", 200)]).await.unwrap();
    let done = s
        .edit_entries(&org, &conv, vec![("b".into(), "[redacted]".into()), ("nope".into(), "x".into())])
        .await
        .unwrap();
    assert_eq!(done, [true, false]);
    let got = s.entries(&org, &conv).await.unwrap();
    assert_eq!(got[1].content, "[redacted]");
    assert_eq!(got[0].content, entry(&org, &conv, "a", 100).content, "other entries unchanged");
    let other_org =
        s.edit_entries(&id(KeyPrefix::Organization), &conv, vec![("a".into(), "x".into())]).await.unwrap();
    assert_eq!(other_org, [false], "edits are scoped by org");
    assert!(s.edit_entries(&org, &conv, vec![("a".into(), "nul\0".into())]).await.is_err());
    assert!(s.edit_entries(&org, &conv, vec![]).await.unwrap().is_empty());
}

pub async fn claim_jti_replay_and_expiry(s: Arc<dyn Store>) {
    let iss = "04vVX0000000001";
    assert!(s.claim_jti(iss, "j1", 2_000, 1_000).await.unwrap(), "first claim");
    assert!(!s.claim_jti(iss, "j1", 2_000, 1_000).await.unwrap(), "replay");
    assert!(!s.claim_jti(iss, "j1", 9_000, 1_999).await.unwrap(), "replay just before expiry");
    assert!(s.claim_jti("04vVX0000000002", "j1", 2_000, 1_000).await.unwrap(), "jti is per issuer");
    assert!(s.claim_jti(iss, "j2", 2_000, 1_000).await.unwrap());

    // Expired at now == exp: the id may be claimed again, and the new expiry counts.
    assert!(s.claim_jti(iss, "j1", 5_000, 2_000).await.unwrap(), "re-claim after expiry");
    assert!(!s.claim_jti(iss, "j1", 5_000, 4_999).await.unwrap(), "the re-claim's expiry holds");

    // Far in the future (this also purges expired claims): everything expired.
    let later = 10_000_000;
    assert!(s.claim_jti(iss, "j2", later + 1_000, later).await.unwrap());
    assert!(s.claim_jti(iss, "j1", later + 1_000, later).await.unwrap());
    assert!(!s.claim_jti(iss, "j1", later + 1_000, later + 1).await.unwrap());
}

/// Many tasks writing at once: group commit must give each its own correct answer and lose
/// nothing.
pub async fn concurrent_writes_all_visible(s: Arc<dyn Store>) {
    const TASKS: usize = 200;
    const PER_TASK: usize = 5;
    let org = id(KeyPrefix::Organization);
    let conv = id(KeyPrefix::Conversation);
    let existing = voice_call(&org, "existing", 0);
    s.insert(existing.clone()).await.unwrap();

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, org, conv, existing) = (s.clone(), org.clone(), conv.clone(), existing.clone());
        tasks.push(tokio::spawn(async move {
            let call = voice_call(&org, &format!("vck-{t}"), t as i64 + 1);
            s.apply(vec![WriteOp::Insert(call.clone())]).await.unwrap();
            let entries =
                (0..PER_TASK).map(|i| entry(&org, &conv, &format!("t{t}-m{i}"), i as i64)).collect();
            assert_eq!(s.append_entries(entries).await.unwrap(), [true; PER_TASK]);
            assert!(s.claim_jti("iss", &format!("jti-{t}"), 10_000, 1).await.unwrap());
            assert!(s.update(&org, &call.id, fields(json!({"Task": t})), 99).await.unwrap());
            if t % 10 == 0 {
                // A failing batch in the middle of everyone else's writes.
                let doomed = voice_call(&org, &format!("doomed-{t}"), 1);
                let result = s.apply(vec![WriteOp::Insert(doomed), WriteOp::Insert(existing.clone())]).await;
                assert!(matches!(result, Err(StoreError::Duplicate(_))), "got {result:?}");
            }
            call.id
        }));
    }
    let mut call_ids = Vec::new();
    for task in tasks {
        call_ids.push(task.await.unwrap());
    }

    let calls = s.list(&org, "VoiceCall").await.unwrap();
    assert_eq!(calls.len(), TASKS + 1);
    for (t, call_id) in call_ids.iter().enumerate() {
        let call = s.get(&org, call_id).await.unwrap().expect("every acknowledged insert is visible");
        assert_eq!(call.i64("Task"), Some(t as i64));
        assert_eq!(call.modified_ms, 99);
    }
    for t in (0..TASKS).step_by(10) {
        assert!(s.find_by_key(&org, "VoiceCall", &format!("doomed-{t}")).await.unwrap().is_empty());
    }
    assert_eq!(s.entries(&org, &conv).await.unwrap().len(), TASKS * PER_TASK);
    for t in 0..TASKS {
        assert!(!s.claim_jti("iss", &format!("jti-{t}"), 10_000, 2).await.unwrap());
    }
}

/// Concurrent writers racing for the same key: exactly one wins, everyone gets an answer.
pub async fn concurrent_conflicts_have_one_winner(s: Arc<dyn Store>) {
    const TASKS: usize = 100;
    let org = id(KeyPrefix::Organization);
    let conv = id(KeyPrefix::Conversation);
    let contested = voice_call(&org, "contested", 1);

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, org, conv, contested) = (s.clone(), org.clone(), conv.clone(), contested.clone());
        tasks.push(tokio::spawn(async move {
            let message = s.append_entries(vec![entry(&org, &conv, "shared", t as i64)]).await.unwrap()[0];
            let jti = s.claim_jti("iss", "shared-jti", 10_000, 1).await.unwrap();
            let insert = match s.insert(contested).await {
                Ok(()) => true,
                Err(StoreError::Duplicate(_)) => false,
                Err(e) => panic!("unexpected error {e}"),
            };
            (message, jti, insert)
        }));
    }
    let mut wins = (0, 0, 0);
    for task in tasks {
        let (message, jti, insert) = task.await.unwrap();
        wins.0 += usize::from(message);
        wins.1 += usize::from(jti);
        wins.2 += usize::from(insert);
    }
    assert_eq!(wins, (1, 1, 1), "(message, jti, insert) winners");
    assert_eq!(s.entries(&org, &conv).await.unwrap().len(), 1);
    assert_eq!(s.get(&org, &contested.id).await.unwrap(), Some(contested));
}

pub async fn close_refuses_later_writes(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let call = voice_call(&org, "before", 1);
    s.insert(call).await.unwrap();
    s.close().await;
    assert!(s.insert(voice_call(&org, "after", 2)).await.is_err());
    assert!(s.claim_jti("iss", "j", 10, 1).await.is_err());
    s.close().await; // twice is harmless
}

/// NUL characters are refused alike by every backend (PostgreSQL cannot store them); record
/// fields may hold them (they are stored as escaped JSON).
pub async fn nul_characters(s: Arc<dyn Store>) {
    let org = id(KeyPrefix::Organization);
    let conv = id(KeyPrefix::Conversation);
    let mut bad = entry(&org, &conv, "m1", 1);
    bad.content = "a\0b".into();
    let good = entry(&org, &conv, "m2", 1);
    assert!(matches!(s.append_entries(vec![good, bad]).await, Err(StoreError::Database(_))));
    assert!(s.entries(&org, &conv).await.unwrap().is_empty(), "nothing of the refused call is stored");

    let call = voice_call(&org, "k\0ey", 1);
    assert!(matches!(s.insert(call.clone()).await, Err(StoreError::Database(_))));
    assert_eq!(s.get(&org, &call.id).await.unwrap(), None);
    assert!(matches!(s.claim_jti("iss", "j\0", 10, 1).await, Err(StoreError::Database(_))));

    let mut call = voice_call(&org, "key", 1);
    call.set("Subject", "nul \0 inside, \\u0000 and \\\0 too");
    call.set("CallStartDateTime", "2026-01-01T00:00:00.000Z");
    s.insert(call.clone()).await.unwrap();
    assert_eq!(s.get(&org, &call.id).await.unwrap(), Some(call.clone()));
    // Indexed date-times are read beside them, and a NUL in one is not a date-time.
    let mut odd = voice_call(&org, "odd", 2);
    odd.set("CallStartDateTime", "\0");
    s.insert(odd.clone()).await.unwrap();
    let bounds = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    let found = s.find_range(&org, "VoiceCall", "CallStartDateTime", bounds.0, bounds.1, None).await.unwrap();
    assert_eq!(found, [call]);
}
