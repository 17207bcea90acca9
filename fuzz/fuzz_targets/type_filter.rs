//! `$export` kick-off parameters as `GET [base]/$export?…` parses them, with the input as the
//! `_typeFilter` value (comma-separated `Type?query` items, each percent-encoded): each item
//! goes through the search parser in strict mode. Lenient (`Prefer: handling=lenient`) and
//! strict both run.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use oxifhir_server::operations::export::params;
use oxifhir_server::route::OperationTarget;
use oxifhir_server::search_params::SearchParams;
use oxifhir_server::{FhirRequest, Method, ServerConfig};

static CONFIG: LazyLock<ServerConfig> = LazyLock::new(ServerConfig::default);
static PARAMS: LazyLock<SearchParams> = LazyLock::new(SearchParams::r4);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut request = FhirRequest::new(Method::Get, "$export");
    request.query = vec![("_typeFilter".to_owned(), text.into_owned())];
    for lenient in [false, true] {
        let _ = params::parse(
            &CONFIG,
            &PARAMS,
            &request,
            &OperationTarget::System,
            lenient,
        );
    }
});
