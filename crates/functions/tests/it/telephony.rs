//! InvokeTelephonyIntegrationApiFunction: the request each method builds (sans-IO).

use serde_json::{json, Value};
use voxbridge_functions::telephony::{build_request, call_attributes, HttpMethod};

/// 2025-01-15T17:00:00.000Z
const NOW: i64 = 1_736_960_400_000;

fn event(params: Value, contact: Value) -> Value {
    let mut data = json!({
        "Attributes": {"sfdc-MyField__c": "blue", "sfdc-IVRType__c": "billing", "other": "x"},
        "Channel": "VOICE",
        "ContactId": "c0ffee00-0000-4000-8000-000000000001",
        "CustomerEndpoint": {"Address": "+14155550123", "Type": "TELEPHONE_NUMBER"},
        "InitialContactId": "c0ffee00-0000-4000-8000-000000000001",
        "InitiationMethod": "INBOUND",
        "PreviousContactId": "c0ffee00-0000-4000-8000-000000000000",
        "Queue": null,
        "SystemEndpoint": {"Address": "+15550100100", "Type": "TELEPHONE_NUMBER"},
    });
    if let (Value::Object(d), Value::Object(extra)) = (&mut data, contact) {
        d.extend(extra);
    }
    json!({"Details": {"ContactData": data, "Parameters": params}, "Name": "ContactFlowEvent"})
}

#[test]
fn create_voice_call_pstn() {
    let r = build_request(&event(json!({"methodName": "createVoiceCall"}), json!({})), "DemoCallCenter", NOW)
        .unwrap();
    assert_eq!(r.http_method, HttpMethod::Post);
    assert_eq!(r.path, "/voiceCalls");
    assert!(r.provider_header);
    assert_eq!(
        r.body,
        json!({
            "callCenterApiName": "DemoCallCenter",
            "vendorCallKey": "c0ffee00-0000-4000-8000-000000000001",
            "to": "+15550100100",
            "from": "+14155550123",
            "initiationMethod": "Inbound",
            "startTime": "2025-01-15T17:00:00.000Z",
            "callSubtype": "PSTN",
            "participants": [{"participantKey": "+14155550123", "type": "END_USER"}],
            "callAttributes": "{\"MyField__c\":\"blue\",\"IVRType__c\":\"billing\"}",
        })
    );
    // callAttributes is a string holding JSON.
    let attrs: Value = serde_json::from_str(r.body["callAttributes"].as_str().unwrap()).unwrap();
    assert_eq!(attrs, json!({"MyField__c": "blue", "IVRType__c": "billing"}));
}

#[test]
fn create_voice_call_webrtc_and_missing_subtype() {
    let webrtc = json!({"SegmentAttributes": {"connect:Subtype": {"ValueString": "connect:WebRTC"}},
        "Attributes": {"WebRTC_From": "browser-user", "callOrigin": "Preview"}});
    let r = build_request(&event(json!({"methodName": "createVoiceCall"}), webrtc), "CC", NOW).unwrap();
    assert_eq!(r.body["callSubtype"], "WebRTC");
    assert_eq!(r.body["from"], "browser-user");
    assert_eq!(r.body["to"], "+15550100100");
    assert_eq!(r.body["participants"], json!([{"participantKey": "WebRTC_Default", "type": "END_USER"}]));
    assert_eq!(r.body["callOrigin"], "Preview");
    assert_eq!(r.body["callAttributes"], "{}");

    // WebRTC without any endpoint: the defaults.
    let bare = json!({"SegmentAttributes": {"connect:Subtype": {"ValueString": "connect:WebRTC"}},
        "CustomerEndpoint": null, "SystemEndpoint": null});
    let r = build_request(&event(json!({"methodName": "createVoiceCall"}), bare), "CC", NOW).unwrap();
    assert_eq!((&r.body["from"], &r.body["to"]), (&json!("WebRTC_Default"), &json!("WebRTC_Default")));

    // Subtype present but odd, or SegmentAttributes of the wrong shape: PSTN, no panic.
    for odd in [json!({"SegmentAttributes": null}), json!({"SegmentAttributes": {"connect:Subtype": "x"}})] {
        let r = build_request(&event(json!({"methodName": "createVoiceCall"}), odd), "CC", NOW).unwrap();
        assert_eq!(r.body["callSubtype"], "PSTN");
    }
}

#[test]
fn create_transfer_voice_call() {
    let queue =
        json!({"Queue": {"ARN": "arn:aws:connect:us-east-1:1:instance/i/queue/q", "Name": "Support"}});
    let r = build_request(&event(json!({"methodName": "createTransferVC"}), queue), "CC", NOW).unwrap();
    assert_eq!(r.body["initiationMethod"], "Transfer");
    assert_eq!(r.body["parentVoiceCallId"], "c0ffee00-0000-4000-8000-000000000000");
    assert_eq!(r.body["queue"], "arn:aws:connect:us-east-1:1:instance/i/queue/q");
    assert!(r.body.get("callSubtype").is_none());
}

#[test]
fn update_voice_call_with_field_values_or_flat_parameters() {
    let from_lambda = json!({"methodName": "updateVoiceCall", "contactId": "other-contact",
        "fieldValues": {"isActiveCall": true, "queue": "Support"}});
    let r = build_request(&event(from_lambda, json!({})), "CC", NOW).unwrap();
    assert_eq!(r.http_method, HttpMethod::Patch);
    assert_eq!(r.path, "/voiceCalls/other-contact");
    assert_eq!(r.body, json!({"isActiveCall": true, "queue": "Support", "callCenterApiName": "CC"}));

    let from_flow = json!({"methodName": "updateVoiceCall", "callOrigin": "Voicemail"});
    let r = build_request(&event(from_flow, json!({})), "CC", NOW).unwrap();
    assert_eq!(r.path, "/voiceCalls/c0ffee00-0000-4000-8000-000000000001");
    assert_eq!(r.body, json!({"callOrigin": "Voicemail", "callCenterApiName": "CC"}));
}

#[test]
fn execute_omni_flow() {
    let params = json!({"methodName": "executeOmniFlow", "flowDevName": "Route_VoiceCall",
        "fallbackQueue": "Support", "flowInput-recordId": "0LQVX0000000001", "flowInput-Department": "Billing"});
    let r = build_request(&event(params.clone(), json!({})), "CC", NOW).unwrap();
    assert_eq!(r.http_method, HttpMethod::Patch);
    assert_eq!(r.path, "/voiceCalls/c0ffee00-0000-4000-8000-000000000001/omniFlow");
    assert_eq!(
        r.body,
        json!({"flowDevName": "Route_VoiceCall", "fallbackQueue": "Support", "dialedNumber": "+15550100100",
            "flowInputParameters": {"recordId": "0LQVX0000000001", "Department": "Billing"}})
    );
    // Without a system endpoint the dialed number comes from fieldValues.
    let mut p = params;
    p["fieldValues"] = json!({"dialedNumber": "+15550100199"});
    let r = build_request(&event(p, json!({"SystemEndpoint": null})), "CC", NOW).unwrap();
    assert_eq!(r.body["dialedNumber"], "+15550100199");
}

#[test]
fn routing_calls_have_null_bodies_and_no_provider_header() {
    for (method, suffix) in [("cancelOmniFlowExecution", "clearRouting"), ("rerouteFlowExecution", "reroute")]
    {
        let r = build_request(&event(json!({"methodName": method}), json!({})), "CC", NOW).unwrap();
        assert_eq!(r.http_method, HttpMethod::Patch);
        assert_eq!(r.path, format!("/voiceCalls/c0ffee00-0000-4000-8000-000000000001/{suffix}"));
        assert_eq!(r.body, Value::Null);
        assert!(!r.provider_header);
    }
}

#[test]
fn send_message() {
    let params = json!({"methodName": "sendMessage", "fieldValues": {"messageId": "m1", "content": "hi",
        "participantId": "+14155550123", "senderType": "END_USER", "startTime": 1, "endTime": 2}});
    let r = build_request(&event(params, json!({})), "CC", NOW).unwrap();
    assert_eq!(r.http_method, HttpMethod::Post);
    assert_eq!(r.path, "/voiceCalls/c0ffee00-0000-4000-8000-000000000001/messages");
    assert_eq!(r.body["callCenterApiName"], "CC");
    assert_eq!(r.body["messageId"], "m1");
}

#[test]
fn create_callback_takes_the_customers_number_and_numeric_settings() {
    let params = json!({"methodName": "createCallback", "queue": "Support", "initialDelaySeconds": "60",
                        "maxAttempts": 3, "retryDelaySeconds": "soon"});
    let contact = json!({"CustomerEndpoint": {"Address": "+14155550123"}});
    let r = build_request(&event(params, contact), "CC", NOW).unwrap();
    assert_eq!(r.http_method, HttpMethod::Post);
    assert_eq!(r.path, "/voiceCalls/c0ffee00-0000-4000-8000-000000000001/callback");
    assert_eq!(
        r.body,
        json!({"callbackNumber": "+14155550123", "queue": "Support", "initialDelaySeconds": 60,
               "maxAttempts": 3, "retryDelaySeconds": "soon"})
    );
    let p = json!({"methodName": "createCallback", "callbackNumber": "+14155550999"});
    let r = build_request(&event(p, json!({"CustomerEndpoint": {"Address": "+14155550123"}})), "CC", NOW)
        .unwrap();
    assert_eq!(r.body, json!({"callbackNumber": "+14155550999"}));
}

#[test]
fn unsupported_methods_and_missing_contacts_fail() {
    let e = build_request(&event(json!({"methodName": "dance"}), json!({})), "CC", NOW).unwrap_err();
    assert_eq!(e, "Unsupported method: dance");
    let e = build_request(&json!({"Details": {"Parameters": {"methodName": "createVoiceCall"}}}), "CC", NOW)
        .unwrap_err();
    assert!(e.contains("no contactId"), "{e}");
    assert!(build_request(&json!(null), "CC", NOW).is_err());
    assert!(build_request(&json!([1, 2]), "CC", NOW).is_err());
}

#[test]
fn contact_ids_are_escaped_in_paths() {
    let r = build_request(
        &event(json!({"methodName": "updateVoiceCall", "contactId": "a/b c"}), json!({})),
        "CC",
        NOW,
    )
    .unwrap();
    assert_eq!(r.path, "/voiceCalls/a%2Fb%20c");
}

#[test]
fn call_attributes_keep_only_sfdc_prefixed_attributes() {
    assert_eq!(call_attributes(None), "{}");
    let attrs = json!({"sfdc-RecordTypeId": "012000000000001", "sfdc": "no", "x-sfdc-y": "no"});
    assert_eq!(call_attributes(attrs.as_object()), "{\"RecordTypeId\":\"012000000000001\"}");
}
