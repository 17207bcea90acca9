//! Input parameters of an operation, taken from the query and from a `Parameters` body alike,
//! as `(name, value)` strings, with the checks every operation shares (a body that is not
//! `Parameters`, a parameter without a value, a name the operation does not take).

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::format::{BodyKind, body_kind};
use crate::request::{FhirRequest, Method};
use crate::route::truncate;

/// The parameters of `request` for operation `$name`: the query's, then (for a `POST` with a
/// body) the `Parameters` body's, each value as text (`valueBoolean` as `true`/`false`, a
/// `Reference` as its `reference`). Query names starting with `_` (`_format`, `_pretty`) are
/// left out. A name outside `known` is a `400`.
pub fn gather(
    request: &FhirRequest,
    name: &str,
    known: &[&str],
) -> ApiResult<Vec<(String, String)>> {
    let mut params: Vec<(String, String)> = request
        .query
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .cloned()
        .collect();
    if request.method == Method::Post && !request.body.iter().all(u8::is_ascii_whitespace) {
        params.extend(from_body(request, name)?);
    }
    if let Some((unknown, _)) = params.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Operation ${name} has no parameter '{}' (it takes {})",
            truncate(unknown, 64),
            known.join(", ")
        ))
        .at(truncate(unknown, 64).to_string()));
    }
    Ok(params)
}

/// The parameters of a `Parameters` body sent to operation `$name`, each value as text (see
/// [`gather`]); a `400` for a body that is not JSON or not `Parameters`, or a parameter
/// without a name or a value.
pub fn from_body(request: &FhirRequest, name: &str) -> ApiResult<Vec<(String, String)>> {
    body_kind(request, &[BodyKind::Json])?;
    let body = oxifhir_model::json::parse(&request.body).map_err(|e| {
        ApiError::bad_request(format!(
            "The body is not JSON: {}",
            truncate(&e.to_string(), 120)
        ))
    })?;
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ApiError::bad_request(format!(
            "A POST to ${name} takes a Parameters resource (or an empty body with the parameters in the query)"
        )));
    }
    let mut params = Vec::new();
    for parameter in body
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let Some(param_name) = parameter.get("name").and_then(Value::as_str) else {
            return Err(ApiError::bad_request("Every parameter needs a name"));
        };
        let value = parameter
            .as_object()
            .and_then(|p| p.iter().find(|(k, _)| k.starts_with("value")))
            .map(|(_, v)| v);
        let text = match value {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Object(o)) if o.get("reference").and_then(Value::as_str).is_some() => o
                .get("reference")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "The parameter '{}' needs a value",
                    truncate(param_name, 64)
                )));
            }
        };
        params.push((param_name.to_owned(), text));
    }
    Ok(params)
}

/// The boolean parameter `name` (`true`/`false`), `false` when absent; a `400` for any other
/// value or for two values.
pub fn boolean(params: &[(String, String)], name: &str) -> ApiResult<bool> {
    let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let value = values.next();
    if values.next().is_some() {
        return Err(
            ApiError::bad_request(format!("The parameter '{name}' is given twice")).at(name),
        );
    }
    match value.map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "The parameter '{name}' must be true or false, not '{}'",
            truncate(other, 64)
        ))
        .at(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(query: &str, body: &str) -> FhirRequest {
        let mut r = FhirRequest::new(Method::Post, &format!("$op{query}"));
        r.body = body.as_bytes().to_vec();
        r.headers.content_type = Some("application/fhir+json".into());
        r
    }

    #[test]
    fn query_and_body() {
        let body = r#"{"resourceType":"Parameters","parameter":[
            {"name":"url","valueUrl":"http://a"},{"name":"flag","valueBoolean":true},
            {"name":"limit","valueInteger":5}]}"#;
        let params = gather(
            &post("?url=http://b&_format=json", body),
            "op",
            &["url", "flag", "limit"],
        )
        .expect("parameters");
        assert_eq!(
            params,
            [
                ("url".to_string(), "http://b".to_string()),
                ("url".into(), "http://a".into()),
                ("flag".into(), "true".into()),
                ("limit".into(), "5".into()),
            ]
        );
        assert!(boolean(&params, "flag").expect("flag"));
        assert!(!boolean(&params, "other").expect("absent"));
    }

    #[test]
    fn bad_input_is_400() {
        let known = &["url"];
        assert_eq!(
            gather(&post("?nope=1", ""), "op", known)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            gather(&post("", "{}"), "op", known).unwrap_err().status(),
            400
        );
        assert_eq!(
            gather(&post("", "not json"), "op", known)
                .unwrap_err()
                .status(),
            400
        );
        let no_value = r#"{"resourceType":"Parameters","parameter":[{"name":"url"}]}"#;
        assert_eq!(
            gather(&post("", no_value), "op", known)
                .unwrap_err()
                .status(),
            400
        );
        let params = vec![("flag".to_string(), "yes".to_string())];
        assert_eq!(boolean(&params, "flag").unwrap_err().status(), 400);
    }
}
