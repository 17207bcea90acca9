//! A request body as `POST [base]/{type}` reads it: JSON parsing (exact decimals), the
//! resource checks and R4 validation, then, for a valid resource, index extraction (every R4
//! search parameter of its type) and the stored bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oxifhir_server::repository;

fuzz_target!(|data: &[u8]| {
    let Ok(map) = repository::parse_resource(data, None) else {
        return;
    };
    let resource = serde_json::Value::Object(map);
    let Some(resource_type) = oxifhir_model::json::resource_type(&resource) else {
        panic!("a validated resource has a resourceType");
    };
    let _ = repository::index_entries(resource_type, &resource);
    let bytes = oxifhir_model::json::to_bytes(&resource);
    assert!(
        oxifhir_model::json::parse(&bytes).is_ok(),
        "stored bytes parse again"
    );
});
