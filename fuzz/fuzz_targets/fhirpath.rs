//! The FHIRPath subset: the first line of the input is an expression, the rest a resource to
//! evaluate it on (a fixed Patient when it is not JSON). Parsing must fail cleanly on anything
//! outside the subset, and evaluation must end.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use oxifhir_model::fhirpath::Expression;
use serde_json::Value;

static PATIENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../seeds/patient.json")).unwrap_or(Value::Null)
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (expression, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(expression) = Expression::parse(expression) else {
        return;
    };
    let own = oxifhir_model::json::parse(rest.as_bytes()).ok();
    let resource = own.as_ref().unwrap_or(&PATIENT);
    for item in expression.evaluate(resource) {
        let _ = item.type_name();
    }
});
