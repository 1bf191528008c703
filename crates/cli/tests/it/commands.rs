//! Commands that do not serve: help, setup, info, token, keys, configuration errors.

use std::fs;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::{fails, ok, run, setup_and_info};

#[test]
fn help_works_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["setup"],
        &["info"],
        &["token"],
        &["keys"],
        &["keys", "generate"],
        &["calls"],
        &["calls", "hold"],
        &["calls", "resume"],
        &["calls", "pause-recording"],
        &["calls", "resume-recording"],
        &["bench"],
        &["bench", "telephony"],
        &["bench", "crm"],
        &["call"],
        &["call", "simulate"],
        &["flows"],
        &["flows", "validate"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = ok(dir.path(), &args);
        assert!(out.contains("Usage: voxbridge"), "{args:?}: {out}");
    }
    assert!(ok(dir.path(), &["--version"]).starts_with("voxbridge "));
    // No command: usage on stderr, failure.
    assert!(fails(dir.path(), &[], &[]).contains("Usage"));
}

#[test]
fn setup_then_info_describes_the_demo_org() {
    let dir = tempfile::tempdir().unwrap();
    let info = setup_and_info(dir.path());

    let org = info["org"]["id"].as_str().unwrap();
    assert!(org.starts_with("00D") && org.len() == 15, "{org}");
    assert_eq!(info["org"]["id18"].as_str().unwrap().len(), 18);
    assert!(info["org"]["id18"].as_str().unwrap().starts_with(org));

    let cc = &info["call_centers"][0];
    assert_eq!(cc["api_name"], "DemoCallCenter");
    assert!(cc["id"].as_str().unwrap().starts_with("04v"));
    assert_eq!(cc["unified_routing"], true);
    assert_eq!(cc["source"], "demo");
    let private = cc["private_key_file"].as_str().unwrap();
    let public = cc["public_key_file"].as_str().unwrap();
    assert!(private.ends_with("data/keys/DemoCallCenter.private.pem"), "{private}");
    assert!(fs::read_to_string(private).unwrap().contains("BEGIN PRIVATE KEY"));
    assert!(fs::read_to_string(public).unwrap().contains("BEGIN PUBLIC KEY"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(private).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let phone = &info["phone_channels"][0];
    assert_eq!(phone["phone_number"], "+15550100100");
    assert_eq!(phone["call_center"], "DemoCallCenter");
    assert_eq!(phone["routing_definition"], "Route_VoiceCall");
    assert_eq!(phone["fallback_queue"], "Support");

    let queues = info["queues"].as_array().unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q["developer_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Support", "Billing"]);
    for q in queues {
        assert!(q["id"].as_str().unwrap().starts_with("00G"));
        let ext = q["external_ids"][0].as_str().unwrap();
        assert!(
            ext.starts_with("arn:aws:connect:us-east-1:123456789012:instance/") && ext.contains("/queue/")
        );
    }
    let agents = info["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 3);
    assert_eq!(agents[0]["username"], "ada@demo.voxbridge.local");
    assert!(agents[0]["external_ids"][0].as_str().unwrap().contains("/agent/"));

    let routing: Vec<&str> = info["routing_definitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["developer_name"].as_str().unwrap())
        .collect();
    assert!(routing.contains(&"Route_VoiceCall"));
    let fields: Vec<&str> =
        info["custom_fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    for f in [
        "VoiceCall.MyField__c",
        "VoiceCall.Department__c",
        "VoiceCall.sf_realtime_transcription_status__c",
        "VoiceCall.dateCustomField__c",
        "VoiceCall.checkbox__c",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }

    assert_eq!(info["urls"]["telephony_api"], "http://127.0.0.1:8080/telephony/v1");
    assert_eq!(info["urls"]["openapi"], "http://127.0.0.1:8080/openapi.json");
    assert_eq!(info["tls"]["enabled"], false);
    assert_eq!(info["database"]["backend"], "sqlite");
    assert_eq!(info["token_command"], "voxbridge token --call-center DemoCallCenter --data data");

    // The human form names the same things.
    let text = ok(dir.path(), &["info", "--data", "data"]);
    for needle in [org, "DemoCallCenter", "+15550100100", "ada@demo.voxbridge.local", "/telephony/v1"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }

    // A second setup keeps the org and the keys.
    let key_before = fs::read(private).unwrap();
    let out = ok(dir.path(), &["setup", "--data", "data"]);
    assert!(out.contains("already has org"), "{out}");
    let again: Value = serde_json::from_str(&ok(dir.path(), &["info", "--json", "--data", "data"])).unwrap();
    assert_eq!(again["org"], info["org"]);
    assert_eq!(fs::read(private).unwrap(), key_before);
}

#[test]
fn info_without_setup_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(dir.path(), &["info", "--data", "empty"], &[]);
    assert!(err.contains("voxbridge serve") && err.contains("voxbridge setup"), "{err}");
    let err = fails(dir.path(), &["token", "--data", "empty"], &[]);
    assert!(err.contains("voxbridge setup"), "{err}");
}

fn decode_part(part: &str) -> Value {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn token_claims_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let info = setup_and_info(dir.path());
    let org = info["org"]["id"].as_str().unwrap();
    let public = fs::read(info["call_centers"][0]["public_key_file"].as_str().unwrap()).unwrap();

    let jwt = ok(dir.path(), &["token", "--call-center", "DemoCallCenter", "--data", "data"]);
    let jwt = jwt.trim();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    assert_eq!(decode_part(parts[0])["alg"], "RS256");
    let claims = decode_part(parts[1]);
    assert_eq!(claims["iss"], org);
    assert_eq!(claims["sub"], "DemoCallCenter");
    assert_eq!(claims["aud"], "https://scrt.salesforce.com");
    let (exp, iat) = (claims["exp"].as_i64().unwrap(), claims["iat"].as_i64().unwrap());
    assert_eq!(exp - iat, 300);
    let now = chrono::Utc::now().timestamp();
    assert!((iat - now).abs() < 60);
    uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).unwrap();

    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://scrt.salesforce.com"]);
    validation.set_issuer(&[org]);
    let key = DecodingKey::from_rsa_pem(&public).unwrap();
    let verified = jsonwebtoken::decode::<Value>(jwt, &key, &validation).expect("signature verifies");
    assert_eq!(verified.claims["sub"], "DemoCallCenter");

    // Options.
    let jwt = ok(
        dir.path(),
        &["token", "--data", "data", "--ttl", "200", "--audience", "https://voice.example.com", "--no-jti"],
    );
    let claims = decode_part(jwt.trim().split('.').nth(1).unwrap());
    assert_eq!(claims["aud"], "https://voice.example.com");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 200);
    assert!(claims.get("jti").is_none());

    // Two tokens never share a jti.
    let a = decode_part(ok(dir.path(), &["token", "--data", "data"]).trim().split('.').nth(1).unwrap());
    let b = decode_part(ok(dir.path(), &["token", "--data", "data"]).trim().split('.').nth(1).unwrap());
    assert_ne!(a["jti"], b["jti"]);

    let err = fails(dir.path(), &["token", "--data", "data", "--call-center", "Nope"], &[]);
    assert!(err.contains("no call center `Nope`") && err.contains("DemoCallCenter"), "{err}");
    let err = fails(dir.path(), &["token", "--data", "data", "--ttl", "0"], &[]);
    assert!(err.contains("--ttl"), "{err}");
}

#[test]
fn keys_generate_writes_a_pair_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["keys", "generate", "--out", "k"]);
    assert!(out.contains("[[call_centers]]") && out.contains("public_key_file"), "{out}");
    let private = fs::read_to_string(dir.path().join("k/private.pem")).unwrap();
    let public = fs::read_to_string(dir.path().join("k/public.pem")).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    let err = fails(dir.path(), &["keys", "generate", "--out", "k"], &[]);
    assert!(err.contains("--force"), "{err}");
    ok(dir.path(), &["keys", "generate", "--out", "k", "--force"]);
    assert_ne!(fs::read_to_string(dir.path().join("k/private.pem")).unwrap(), private);
    let err = fails(dir.path(), &["keys", "generate", "--out", "k2", "--bits", "1024"], &[]);
    assert!(err.contains("2048"), "{err}");
}

#[test]
fn configured_call_center_is_registered_and_can_sign() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["keys", "generate", "--out", "acme"]);
    fs::write(
        dir.path().join("voxbridge.toml"),
        "version = 1\n[server]\ndata_dir = \"state\"\n\
         [[call_centers]]\napi_name = \"Acme\"\nname = \"Acme Contact Center\"\n\
         public_key_file = \"acme/public.pem\"\nunified_routing = false\n",
    )
    .unwrap();
    let info_before = run(dir.path(), &["info", "--json", "--config", "voxbridge.toml"], &[]);
    assert!(!info_before.status.success(), "no setup yet");

    ok(dir.path(), &["setup", "--config", "voxbridge.toml"]);
    assert!(dir.path().join("state/setup.json").is_file(), "data_dir is relative to the config file");
    let info: Value =
        serde_json::from_str(&ok(dir.path(), &["info", "--json", "--config", "voxbridge.toml"])).unwrap();
    let acme = info["call_centers"].as_array().unwrap().iter().find(|c| c["api_name"] == "Acme").unwrap();
    assert!(acme["id"].as_str().unwrap().starts_with("04v"));
    assert_eq!(acme["source"], "config");
    assert_eq!(acme["name"], "Acme Contact Center");
    assert_eq!(acme["unified_routing"], false);
    assert!(acme["private_key_file"].is_null());
    assert_eq!(info["config_file"].as_str().map(|f| f.ends_with("voxbridge.toml")), Some(true));

    // Without --key there is no private key to sign with.
    let err = fails(dir.path(), &["token", "--config", "voxbridge.toml", "--call-center", "Acme"], &[]);
    assert!(err.contains("--key"), "{err}");
    let jwt = ok(
        dir.path(),
        &["token", "--config", "voxbridge.toml", "--call-center", "Acme", "--key", "acme/private.pem"],
    );
    let public = fs::read(dir.path().join("acme/public.pem")).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://scrt.salesforce.com"]);
    let claims =
        jsonwebtoken::decode::<Value>(jwt.trim(), &DecodingKey::from_rsa_pem(&public).unwrap(), &validation)
            .unwrap()
            .claims;
    assert_eq!(claims["sub"], "Acme");
    assert_eq!(claims["iss"], info["org"]["id"]);

    // A missing key file is caught at start, naming the call center.
    fs::write(
        dir.path().join("broken.toml"),
        "version = 1\n[server]\ndata_dir = \"state\"\n[[call_centers]]\napi_name = \"Gone\"\npublic_key_file = \"nope.pem\"\n",
    )
    .unwrap();
    let err = fails(dir.path(), &["setup", "--config", "broken.toml"], &[]);
    assert!(err.contains("call center `Gone`") && err.contains("nope.pem"), "{err}");
}

#[test]
fn configuration_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();

    write("unknown.toml", "version = 1\n[server]\nhttp = \"127.0.0.1:8080\"\nlisten = \"x\"\n");
    let err = fails(dir.path(), &["info", "--config", "unknown.toml"], &[]);
    assert!(err.contains("unknown key `server.listen`") && err.contains("line 4"), "{err}");

    write("noversion.toml", "[server]\nhttp = \"127.0.0.1:8080\"\n");
    let err = fails(dir.path(), &["info", "--config", "noversion.toml"], &[]);
    assert!(err.contains("no `version`") && err.contains("version = 1"), "{err}");

    write("badvalue.toml", "version = 1\n[auth]\nmax_token_lifetime_secs = 60\n");
    let err = fails(dir.path(), &["info", "--config", "badvalue.toml"], &[]);
    assert!(err.contains("auth.max_token_lifetime_secs") && err.contains("180"), "{err}");

    write("badtype.toml", "version = 1\n[limits]\ncalls_per_second = \"fast\"\n");
    let err = fails(dir.path(), &["info", "--config", "badtype.toml"], &[]);
    assert!(err.contains("limits.calls_per_second"), "{err}");

    let err = fails(dir.path(), &["info", "--config", "missing.toml"], &[]);
    assert!(err.contains("missing.toml") && err.contains("--config"), "{err}");

    let err = fails(dir.path(), &["serve", "--data", "d"], &[("VOXBRIDGE_HTTP", "everywhere")]);
    assert!(err.contains("VOXBRIDGE_HTTP is `everywhere`") && err.contains("127.0.0.1:8080"), "{err}");

    // The environment names the file too, and flags beat it.
    write("ok.toml", "version = 1\n[server]\nhttp = \"127.0.0.1:9999\"\n");
    let out = run(dir.path(), &["setup", "--data", "d"], &[("VOXBRIDGE_CONFIG", "ok.toml")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = run(dir.path(), &["info", "--json", "--data", "d"], &[("VOXBRIDGE_CONFIG", "ok.toml")]);
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["urls"]["http"], "http://127.0.0.1:9999");
    let info = run(
        dir.path(),
        &["info", "--json", "--data", "d"],
        &[("VOXBRIDGE_CONFIG", "ok.toml"), ("VOXBRIDGE_HTTP", "127.0.0.1:7777")],
    );
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["urls"]["http"], "http://127.0.0.1:7777");
}
