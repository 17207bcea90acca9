//! Search parameter parsing as `GET [base]/{type}?{query}` and `GET [base]?{query}` run it:
//! the input is `{type}?{query}` (an empty or unknown type: a system search), parsed once
//! lenient and once strict (`Prefer: handling=strict`).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use oxifhir_model::resource_type;
use oxifhir_server::ServerConfig;
use oxifhir_server::interactions::search;
use oxifhir_server::request::parse_query;
use oxifhir_server::search_params::SearchParams;

static CONFIG: LazyLock<ServerConfig> = LazyLock::new(ServerConfig::default);
static PARAMS: LazyLock<SearchParams> = LazyLock::new(SearchParams::r4);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, query) = text.split_once('?').unwrap_or(("Patient", &text));
    let resource_type = resource_type::is_known(head).then_some(head);
    let pairs = parse_query(query);
    for strict in [false, true] {
        if let Ok(parsed) = search::parse(&CONFIG, &PARAMS, resource_type, &pairs, strict) {
            assert!(parsed.query.count <= CONFIG.max_count, "_count is capped");
        }
    }
});
