//! Integration tests of voxbridge-soql: data-driven SOQL and SOSL cases over a seeded
//! dataset (answers are insta snapshots), time-zone and plan checks, and fuzzing.

mod cases;
mod dataset;
mod fuzz;
mod semantics;
