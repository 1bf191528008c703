//! Where the evaluator gets records from.
//!
//! The store is asynchronous and this crate does no IO, so the evaluator reads through the
//! synchronous [`RecordSource`] trait. A server typically fetches what a query needs first
//! (candidates by [`BoundQuery::key_lookup`](crate::BoundQuery::key_lookup) or by listing
//! the object, then [`BoundQuery::parent_ids`](crate::BoundQuery::parent_ids)) and hands
//! them over in a [`MemorySource`].

use std::collections::HashMap;
use voxbridge_core::time::format_ms;
use voxbridge_core::{Record, SfId, TranscriptEntry};

/// Records a query may read. Implementations scope everything to the caller's org.
pub trait RecordSource {
    /// Candidate records of `sobject` (canonical name). Returning more than match is fine:
    /// the evaluator filters; returning fewer loses rows.
    fn records(&self, sobject: &str) -> Vec<&Record>;

    /// A record by id, for parent relationships.
    fn record(&self, id: &SfId) -> Option<&Record>;
}

/// An in-memory [`RecordSource`].
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    records: Vec<Record>,
    by_id: HashMap<SfId, usize>,
}

impl MemorySource {
    pub fn new(records: impl IntoIterator<Item = Record>) -> MemorySource {
        let mut s = MemorySource::default();
        for r in records {
            s.push(r);
        }
        s
    }

    /// Adds a record; a record with the same id replaces the earlier one.
    pub fn push(&mut self, record: Record) {
        match self.by_id.get(&record.id) {
            Some(&i) => self.records[i] = record,
            None => {
                self.by_id.insert(record.id.clone(), self.records.len());
                self.records.push(record);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl RecordSource for MemorySource {
    fn records(&self, sobject: &str) -> Vec<&Record> {
        self.records.iter().filter(|r| r.sobject.eq_ignore_ascii_case(sobject)).collect()
    }

    fn record(&self, id: &SfId) -> Option<&Record> {
        self.by_id.get(id).map(|&i| &self.records[i])
    }
}

/// A transcript entry as a `ConversationEntry` record, so transcripts can be queried
/// (`SELECT Message FROM ConversationEntry WHERE ConversationId = '…'`).
pub fn transcript_record(e: &TranscriptEntry) -> Record {
    let mut r = Record::new(e.id.clone(), e.org.clone(), "ConversationEntry", None, e.created_ms);
    r.set("ConversationId", e.conversation.as_str());
    r.set("ActorType", e.sender_type.as_str());
    r.set("ActorId", e.participant_id.as_str());
    r.set("Message", e.content.as_str());
    r.set("MessageIdentifier", e.message_id.as_str());
    r.set("EntryType", "Text");
    r.set("EntryTime", format_ms(e.start_ms));
    r.set("EndTime", format_ms(e.end_ms));
    r
}
