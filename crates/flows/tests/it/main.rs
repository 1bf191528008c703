//! Integration tests of voxbridge-flows: parsing and round-tripping the real console exports,
//! validation, scripted runs of the sample flows (insta snapshots of the execution log), unit
//! checks of operators, `$.` references and interpolation, and property tests (no panics).

mod driver;
mod fuzz;
mod parse;
mod scripts;
mod units;
mod validate;

use std::path::PathBuf;

/// The sample flows copied from service-cloud-voice/examples-from-doc (see tests/data/flows).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows")
}

/// `(file name, text)` of every fixture flow, sorted by name.
pub fn fixtures() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(fixture_dir())
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read fixture"))
        })
        .collect();
    out.sort();
    out
}

pub fn fixture(name: &str) -> voxbridge_flows::Flow {
    let text = std::fs::read_to_string(fixture_dir().join(name)).expect("read fixture");
    voxbridge_flows::parse_flow(&text).expect("parse fixture")
}
