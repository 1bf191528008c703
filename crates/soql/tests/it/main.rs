//! Integration tests of voxbridge-soql.
