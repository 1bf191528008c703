//! The standard objects and their fields, after the platform's Object Reference, limited to
//! the objects Voxbridge stores (see ARCHITECTURE.md, "Records").
//!
//! The Conversation and ConversationParticipant entries also carry the field names the
//! implementation guide's SOQL examples use (`CreateDate`, `CreateBy`, `ConversationId` on
//! Conversation, `AppType`) so those queries run as printed.

use crate::schema::build::*;
use crate::schema::FieldType::*;

const OWNER: &[&str] = &["User", "Group"];
const RELATED: &[&str] = &["Account", "Case", "Contact", "Lead"];

pub(crate) fn objects() -> Vec<ObjectDef> {
    vec![
        object("Organization", vec![name_field("Name")]),
        keyed(object("CallCenter", vec![name_field("Name"), f("InternalName", String)]), "InternalName"),
        searchable(keyed(
            object(
                "User",
                vec![
                    f("Username", String),
                    name_field("Name"),
                    name_field("FirstName"),
                    name_field("LastName"),
                    f("Alias", String),
                    f("Email", Email),
                    f("Phone", Phone),
                    f("MobilePhone", Phone),
                    f("Title", String),
                    f("IsActive", Boolean),
                    r("CallCenterId", &["CallCenter"], "CallCenter"),
                ],
            ),
            "Username",
        )),
        keyed(
            object(
                "Group",
                vec![
                    name_field("Name"),
                    f("DeveloperName", String),
                    f("Type", Picklist),
                    f("Email", Email),
                    r("OwnerId", OWNER, "Owner"),
                ],
            ),
            "DeveloperName",
        ),
        object(
            "RecordType",
            vec![
                name_field("Name"),
                f("DeveloperName", String),
                f("SobjectType", Picklist),
                f("IsActive", Boolean),
                f("Description", String),
            ],
        ),
        searchable(keyed(
            object(
                "VoiceCall",
                vec![
                    name_field("Name"),
                    f("CallType", Picklist),
                    f("CallSubType", Picklist),
                    f("CallDisposition", String),
                    f("CallStartDateTime", DateTime),
                    f("CallEndDateTime", DateTime),
                    f("CallAcceptDateTime", DateTime),
                    f("CallQueuedDateTime", DateTime),
                    f("CallDurationInSeconds", Int),
                    f("FromPhoneNumber", Phone),
                    f("ToPhoneNumber", Phone),
                    f("CallerContactInfo", String),
                    f("RecipientContactInfo", String),
                    f("VendorCallKey", String),
                    f("VendorType", Picklist),
                    f("QueueName", String),
                    f("CallOrigin", Picklist),
                    r("CallRecordingId", &["VoiceCallRecording"], "CallRecording"),
                    f("IsRecorded", Boolean),
                    r("RelatedRecordId", RELATED, "RelatedRecord"),
                    r("PreviousCallId", &["VoiceCall"], "PreviousCall"),
                    r("NextCallId", &["VoiceCall"], "NextCall"),
                    f("CustomerHoldDuration", Int),
                    f("LongestHoldDuration", Int),
                    f("NumberOfHolds", Int),
                    f("AgentInteractionDuration", Int),
                    f("CallResolution", Picklist),
                    f("Description", TextArea),
                    r("RecordTypeId", &["RecordType"], "RecordType"),
                    r("OwnerId", OWNER, "Owner"),
                    r("UserId", &["User"], "User"),
                    r("CallCenterId", &["CallCenter"], "CallCenter"),
                    r("ConversationId", &["Conversation"], "Conversation"),
                    f("DisconnectReason", String),
                    f("IsDisconnectError", Boolean),
                    f("TelephonyProviderName", String),
                    f("SourceType", Picklist),
                    f("AgentSentimentScore", Double),
                    f("CustomerSentimentScore", Double),
                    f("QualityScore", Double),
                ],
            ),
            "VendorCallKey",
        )),
        keyed(
            object(
                "VoiceCallRecording",
                vec![
                    name_field("Name"),
                    r("VoiceCallId", &["VoiceCall"], "VoiceCall"),
                    f("MediaContentUrl", Url),
                    f("DurationInSeconds", Int),
                ],
            ),
            "VoiceCallId",
        ),
        object(
            "Conversation",
            vec![
                name_field("Name"),
                f("ConversationIdentifier", String),
                r("CallCenterId", &["CallCenter"], "CallCenter"),
                f("Status", Picklist),
                f("StartTime", DateTime),
                f("EndTime", DateTime),
                f("OnHold", Boolean),
                f("RecordingPaused", Boolean),
                r("FirstVoiceCallId", &["VoiceCall"], "FirstVoiceCall"),
                // The guide's spellings.
                alias("ConversationId", "ConversationIdentifier", String),
                alias("CreateDate", "CreatedDate", DateTime),
                alias("CreateBy", "CreatedById", Reference),
                alias("LastModifiedBy", "LastModifiedById", Reference),
            ],
        ),
        keyed(
            object(
                "ConversationParticipant",
                vec![
                    name_field("Name"),
                    r("ConversationId", &["Conversation"], "Conversation"),
                    f("ParticipantRole", Picklist),
                    f("ParticipantKey", String),
                    f("ParticipantDisplayName", String),
                    f("AppType", Picklist),
                    f("JoinedTime", DateTime),
                    f("LeftTime", DateTime),
                ],
            ),
            "ConversationId",
        ),
        object(
            "ConversationEntry",
            vec![
                r("ConversationId", &["Conversation"], "Conversation"),
                f("ActorType", Picklist),
                f("ActorId", String),
                f("ActorName", String),
                f("Message", TextArea),
                f("MessageIdentifier", String),
                f("EntryType", Picklist),
                f("EntryTime", DateTime),
                f("EndTime", DateTime),
                f("Seq", Int),
            ],
        ),
        keyed(
            object(
                "PendingServiceRouting",
                vec![
                    r("WorkItemId", &["VoiceCall", "Case"], "WorkItem"),
                    r("QueueId", &["Group"], "Queue"),
                    r("UserId", &["User"], "User"),
                    f("RoutingDefinition", String),
                    f("RoutingType", Picklist),
                    f("IsPushed", Boolean),
                ],
            ),
            "WorkItemId",
        ),
        searchable(object(
            "Case",
            vec![
                name_field("CaseNumber"),
                f("Subject", String),
                f("Status", Picklist),
                f("IsClosed", Boolean),
                f("ClosedDate", DateTime),
                f("Origin", Picklist),
                f("Priority", Picklist),
                f("Reason", Picklist),
                f("Type", Picklist),
                f("Description", TextArea),
                f("ContactPhone", Phone),
                f("ContactMobile", Phone),
                f("ContactEmail", Email),
                f("SuppliedName", String),
                f("SuppliedEmail", Email),
                f("SuppliedPhone", Phone),
                r("ContactId", &["Contact"], "Contact"),
                r("AccountId", &["Account"], "Account"),
                r("ParentId", &["Case"], "Parent"),
                r("OwnerId", OWNER, "Owner"),
                r("RecordTypeId", &["RecordType"], "RecordType"),
            ],
        )),
        searchable(object(
            "Contact",
            vec![
                name_field("Name"),
                name_field("FirstName"),
                name_field("LastName"),
                f("Salutation", Picklist),
                f("Title", String),
                f("Department", String),
                f("Phone", Phone),
                f("MobilePhone", Phone),
                f("HomePhone", Phone),
                f("OtherPhone", Phone),
                f("Fax", Phone),
                f("Email", Email),
                f("Description", TextArea),
                f("LeadSource", Picklist),
                f("Birthdate", Date),
                r("AccountId", &["Account"], "Account"),
                r("OwnerId", &["User"], "Owner"),
                r("RecordTypeId", &["RecordType"], "RecordType"),
            ],
        )),
        searchable(object(
            "Account",
            vec![
                name_field("Name"),
                f("AccountNumber", String),
                f("Phone", Phone),
                f("Fax", Phone),
                f("Website", Url),
                f("Type", Picklist),
                f("Industry", Picklist),
                f("Description", TextArea),
                f("NumberOfEmployees", Int),
                f("AnnualRevenue", Double),
                r("ParentId", &["Account"], "Parent"),
                r("OwnerId", &["User"], "Owner"),
                r("RecordTypeId", &["RecordType"], "RecordType"),
            ],
        )),
        keyed(
            object(
                "MessagingTemplate",
                vec![name_field("Name"), f("DeveloperName", String), f("Message", TextArea)],
            ),
            "DeveloperName",
        ),
        keyed(
            object(
                "Automation",
                vec![
                    f("DeveloperName", String),
                    name_field("Label"),
                    f("Active", Boolean),
                    // JSON, see docs/automations.md.
                    f("Definition", TextArea),
                ],
            ),
            "DeveloperName",
        ),
        // The messaging outbox: its key is the status, so pending messages are found by key.
        keyed(
            object(
                "MessagingOutbox",
                vec![
                    f("Status", Picklist),
                    f("Channel", String),
                    f("Template", String),
                    f("Recipient", Phone),
                    f("ContextRecordId", String),
                    f("Message", TextArea),
                    f("Automation", String),
                    f("Action", String),
                    f("Attempts", Int),
                    f("NextAttemptAt", DateTime),
                    f("DeliveredAt", DateTime),
                    f("LastError", TextArea),
                ],
            ),
            "Status",
        ),
        keyed(
            object(
                "MessagingDeliveryAttempt",
                vec![
                    r("OutboxId", &["MessagingOutbox"], "Outbox"),
                    f("Attempt", Int),
                    f("AttemptedAt", DateTime),
                    f("DurationMs", Int),
                    f("Succeeded", Boolean),
                    f("StatusCode", Int),
                    f("Error", TextArea),
                ],
            ),
            "OutboxId",
        ),
        searchable(object(
            "Lead",
            vec![
                name_field("Name"),
                name_field("FirstName"),
                name_field("LastName"),
                name_field("Company"),
                f("Title", String),
                f("Phone", Phone),
                f("MobilePhone", Phone),
                f("Email", Email),
                f("Status", Picklist),
                f("LeadSource", Picklist),
                f("IsConverted", Boolean),
                f("Description", TextArea),
                r("OwnerId", OWNER, "Owner"),
            ],
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::schema::{FieldType, Schema};

    #[test]
    fn every_reference_has_a_relationship_and_known_targets() {
        let s = Schema::standard();
        for o in s.objects() {
            for f in &o.fields {
                if f.ty == FieldType::Reference && f.alias_of.is_none() {
                    assert!(f.relationship_name.is_some(), "{}.{}", o.name, f.name);
                    for t in &f.reference_to {
                        assert!(s.object(t).is_some(), "{}.{} → {t}", o.name, f.name);
                    }
                }
                if let Some(a) = &f.alias_of {
                    assert!(o.field(a).is_some(), "{}.{} aliases unknown {a}", o.name, f.name);
                }
            }
            if let Some(k) = &o.key_field {
                assert!(o.field(k).is_some(), "{} key {k}", o.name);
            }
        }
    }
}
