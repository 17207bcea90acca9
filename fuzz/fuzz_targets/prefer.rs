//! Request headers every request passes through before routing: the input's first line is the
//! `Prefer` header, the second `Accept`, the third `Content-Type`, the rest the path and
//! query (`Patient/1?_format=json`), as the HTTP edge hands them to `dispatch`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oxifhir_server::prefer::Preferences;
use oxifhir_server::request::{parse_query, split_path};
use oxifhir_server::{FhirRequest, Method, format, route};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let prefer = lines.next().map(str::to_owned);
    let accept = lines.next().map(str::to_owned);
    let content_type = lines.next().map(str::to_owned);
    let url = lines.next().unwrap_or("");
    let _ = Preferences::parse(prefer.as_deref());
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    for method in [Method::Get, Method::Post] {
        let mut request = FhirRequest::new(method, "");
        request.segments = split_path(path);
        request.query = parse_query(query);
        request.headers.prefer = prefer.clone();
        request.headers.accept = accept.clone();
        request.headers.content_type = content_type.clone();
        let _ = format::negotiate(&request);
        let _ = format::body_kind(
            &request,
            &[format::BodyKind::Json, format::BodyKind::JsonPatch],
        );
        let _ = route::route(&request);
    }
});
