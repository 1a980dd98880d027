//! Service descriptions as `rpc-api` and `Description::from_json` read them (a file, or what a
//! server answers): arbitrary bytes never panic the reader, and whatever reads renders in every
//! export and compares equal to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rpc_core::describe::{diff, to_json_schema, to_openapi, to_proto, Description};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(description) = Description::from_json(text) else {
        return;
    };
    let _ = to_proto(&description);
    let _ = to_json_schema(&description);
    let _ = to_openapi(&description);
    assert!(
        diff(&description, &description).is_empty(),
        "a description differs from itself"
    );
});
