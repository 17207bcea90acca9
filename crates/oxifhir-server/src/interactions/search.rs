//! `search` at type and system level: parameters parsed into a store query, results written as
//! a `searchset` Bundle with keyset-cursor paging links.

use oxifhir_model::bundle::{BundleWriter, EntryParts};
use oxifhir_model::outcome::{IssueCode, OperationOutcome};
use oxifhir_model::{DateRange, Instant, resource_type};
use oxifhir_store::{
    Condition, ResourceVersion, SearchPage, SearchQuery, SortField, SortKey, StoreTx,
};

use super::Context;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult, warning};
use crate::format::{BodyKind, body_kind};
use crate::prefer::Handling;
use crate::request::{Method, parse_query};
use crate::response::FhirResponse;
use crate::route::{known_type, truncate};

/// The name of the paging-cursor parameter in `next` links.
pub const CURSOR_PARAM: &str = "_cursor";

/// Parameters that shape results or responses rather than select resources.
const CONTROL_PARAMS: &[&str] = &[
    "_count",
    "_sort",
    "_total",
    "_summary",
    "_format",
    "_pretty",
    CURSOR_PARAM,
    "_type",
];

/// A search request in store terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSearch {
    pub query: SearchQuery,
    /// `_summary=count`: only the total.
    pub summary_count: bool,
    /// Parameters ignored, with why (reported as warnings).
    pub ignored: Vec<String>,
}

/// Parses search parameters for `resource_type` (`None`: system search, `_type` chooses).
/// With `strict`, a parameter that cannot be honoured is `400`; otherwise it is ignored and
/// reported in `ignored`.
pub fn parse(
    config: &ServerConfig,
    resource_type: Option<&str>,
    params: &[(String, String)],
    strict: bool,
) -> ApiResult<ParsedSearch> {
    let mut query = SearchQuery {
        count: config.default_count,
        ..Default::default()
    };
    let mut ignored = Vec::new();
    let mut summary_count = false;
    let mut total = false;
    let mut ignore = |name: &str, why: String| -> ApiResult<()> {
        if strict {
            Err(ApiError::not_supported(why).at(name.to_string()))
        } else {
            ignored.push(why);
            Ok(())
        }
    };
    query.resource_types = match resource_type {
        Some(t) => vec![t.to_string()],
        None => Vec::new(),
    };
    for (raw_name, value) in params {
        let (name, modifier) = raw_name
            .split_once(':')
            .map_or((raw_name.as_str(), None), |(n, m)| (n, Some(m)));
        match (name, modifier) {
            ("_id", None) => {
                let ids: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                query.conditions.push(Condition::IdIn(ids));
            }
            ("_id", Some("not")) => {
                query.conditions.push(Condition::IdNotIn(
                    value.split(',').map(|s| s.trim().to_string()).collect(),
                ));
            }
            ("_lastUpdated", None) => query.conditions.push(last_updated(value)?),
            ("_count", None) => {
                let n: usize = value.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "_count must be a non-negative integer, not '{}'",
                        truncate(value, 40)
                    ))
                })?;
                query.count = n.min(config.max_count);
            }
            ("_sort", None) => {
                for key in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    let (descending, field) = match key.strip_prefix('-') {
                        Some(f) => (true, f),
                        None => (false, key),
                    };
                    let field = match field {
                        "_id" => SortField::Id,
                        "_lastUpdated" => SortField::LastUpdated,
                        other => {
                            ignore(
                                "_sort",
                                format!(
                                    "Sorting by '{}' is not supported; the key was ignored",
                                    truncate(other, 64)
                                ),
                            )?;
                            continue;
                        }
                    };
                    query.sort.push(SortKey { field, descending });
                }
            }
            ("_total", None) => match value.as_str() {
                "none" => {}
                "accurate" | "estimate" => total = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "_total must be none, estimate or accurate, not '{}'",
                        truncate(other, 40)
                    )));
                }
            },
            ("_summary", None) if value == "count" => summary_count = true,
            ("_summary", None) if value == "false" => {}
            ("_type", None) if resource_type.is_none() => {
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    query.resource_types.push(known_type(t)?);
                }
            }
            (CURSOR_PARAM, None) => query.cursor = Some(value.clone()),
            ("_format" | "_pretty", _) => {}
            _ => {
                let known = resource_type
                    .is_some_and(|t| oxifhir_model::search_param::lookup(t, name).is_some())
                    || CONTROL_PARAMS.contains(&name);
                let why = if known {
                    format!(
                        "Search parameter '{}' is not supported by this server yet; it was ignored",
                        truncate(raw_name, 64)
                    )
                } else {
                    format!(
                        "Unknown search parameter '{}'; it was ignored",
                        truncate(raw_name, 64)
                    )
                };
                ignore(name, why)?;
            }
        }
    }
    if summary_count {
        query.count = 0;
        total = true;
    }
    query.with_total = total;
    Ok(ParsedSearch {
        query,
        summary_count,
        ignored,
    })
}

/// The condition of one `_lastUpdated` value: a prefix (`eq` by default) and a date.
fn last_updated(value: &str) -> ApiResult<Condition> {
    let (prefix, date) = match value.get(..2) {
        Some(p @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap")) => {
            (p, &value[2..])
        }
        _ => ("eq", value),
    };
    let range = DateRange::parse(date).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid date '{}' for _lastUpdated",
            truncate(value, 64)
        ))
        .at("_lastUpdated")
    })?;
    let (start, end) = (range.start, range.end);
    Ok(match prefix {
        "eq" => Condition::LastUpdated {
            from: Some(start),
            to: Some(end),
        },
        "ne" => Condition::LastUpdatedNot {
            from: start,
            to: end,
        },
        "gt" | "sa" => Condition::LastUpdated {
            from: Some(end),
            to: None,
        },
        "ge" => Condition::LastUpdated {
            from: Some(start),
            to: None,
        },
        "lt" | "eb" => Condition::LastUpdated {
            from: None,
            to: Some(start),
        },
        "le" => Condition::LastUpdated {
            from: None,
            to: Some(end),
        },
        _ => {
            // `ap`: within 10% of the distance to now, as the FHIR search page suggests.
            let slack = ((Instant::now().millis() - start).abs() / 10).max(end - start);
            Condition::LastUpdated {
                from: Some(start - slack),
                to: Some(end + slack),
            }
        }
    })
}

/// `GET [type]?…`, `POST [type]/_search`, `GET [base]?_type=…`.
pub async fn search(ctx: &Context<'_>, resource_type: Option<&str>) -> ApiResult<FhirResponse> {
    let mut params = ctx.request.query.clone();
    if ctx.request.method == Method::Post {
        if !ctx.request.body.is_empty() {
            body_kind(ctx.request, &[BodyKind::Form])?;
        }
        let form = std::str::from_utf8(&ctx.request.body)
            .map_err(|_| ApiError::bad_request("The form body is not UTF-8"))?;
        params.extend(parse_query(form));
    }
    let strict = ctx.prefs.handling == Handling::Strict;
    let parsed = parse(ctx.server.config(), resource_type, &params, strict)?;
    let page = ctx.server.store().search(&parsed.query).await?;
    Ok(FhirResponse::json(
        200,
        searchset(ctx.server.config(), resource_type, &params, &parsed, &page),
    ))
}

/// Writes a page of results as a `searchset` Bundle with `self` and `next` links built from
/// `params` (the request's parameters) under `{base}/{type}`.
pub fn searchset(
    config: &ServerConfig,
    resource_type: Option<&str>,
    params: &[(String, String)],
    parsed: &ParsedSearch,
    page: &SearchPage,
) -> Vec<u8> {
    let path = resource_type.unwrap_or("");
    let links = super::paging_links(
        config,
        path,
        params,
        parsed.query.cursor.as_deref(),
        page.next.as_deref(),
    );
    let total = page.total.or_else(|| {
        (parsed.query.cursor.is_none() && page.next.is_none())
            .then_some(page.resources.len() as u64)
    });
    let mut bundle = BundleWriter::new(
        "searchset",
        &oxifhir_model::id::new_id(),
        Instant::now(),
        total,
        &links,
    );
    for resource in &page.resources {
        bundle.entry(
            Some(&resource.body),
            EntryParts {
                full_url: Some(config.url(&format!("{}/{}", resource.resource_type, resource.id))),
                search_mode: Some("match"),
                ..Default::default()
            },
        );
    }
    if !parsed.ignored.is_empty() {
        let outcome = OperationOutcome {
            id: None,
            issues: parsed
                .ignored
                .iter()
                .map(|why| warning(IssueCode::NotSupported, why.clone()))
                .collect(),
        };
        bundle.entry(
            Some(&oxifhir_model::json::to_bytes(&outcome.to_json())),
            EntryParts {
                search_mode: Some("outcome"),
                ..Default::default()
            },
        );
    }
    bundle.finish()
}

/// Up to two current resources of `resource_type` matching conditional-interaction criteria
/// (`If-None-Exist`, conditional update/delete/patch, conditional references). Criteria that
/// cannot be honoured exactly are `400`: ignoring one could touch the wrong resource.
pub async fn conditional_matches(
    tx: &mut dyn StoreTx,
    config: &ServerConfig,
    resource_type: &str,
    criteria: &str,
) -> ApiResult<Vec<ResourceVersion>> {
    let criteria = criteria.trim_start_matches('?');
    let params: Vec<(String, String)> = parse_query(criteria)
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_format" | "_pretty"))
        .collect();
    if params.is_empty() {
        return Err(ApiError::new(
            crate::error::ErrorKind::PreconditionFailed,
            "A conditional interaction needs search criteria",
        ));
    }
    if !resource_type::is_known(resource_type) {
        return Err(ApiError::not_supported(format!(
            "Unknown resource type '{resource_type}'"
        )));
    }
    let mut parsed = parse(config, Some(resource_type), &params, true)?;
    parsed.query.count = 2;
    parsed.query.cursor = None;
    parsed.query.with_total = false;
    Ok(tx
        .search(&parsed.query)
        .await
        .map_err(ApiError::from)?
        .resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(query: &str, strict: bool) -> Result<ParsedSearch, u16> {
        parse(
            &ServerConfig::default(),
            Some("Patient"),
            &parse_query(query),
            strict,
        )
        .map_err(|e| e.status())
    }

    #[test]
    fn parses_ids_dates_and_paging() {
        let s = p("_id=a,b&_count=5&_sort=-_lastUpdated", true).unwrap();
        assert_eq!(
            s.query.conditions,
            vec![Condition::IdIn(vec!["a".into(), "b".into()])]
        );
        assert_eq!(s.query.count, 5);
        assert_eq!(
            s.query.sort,
            vec![SortKey {
                field: SortField::LastUpdated,
                descending: true
            }]
        );
        let s = p("_lastUpdated=ge2024-01-01&_lastUpdated=lt2024-02", true).unwrap();
        assert_eq!(s.query.conditions.len(), 2);
        assert_eq!(p("_count=99999", true).unwrap().query.count, 1000);
        assert_eq!(p("_count=-1", true), Err(400));
        assert_eq!(p("_lastUpdated=2024-13", true), Err(400));
    }

    #[test]
    fn unknown_parameters_warn_or_fail() {
        let s = p("name=smith&foo=bar", false).unwrap();
        assert_eq!(s.ignored.len(), 2);
        assert!(s.ignored[0].contains("not supported"));
        assert!(s.ignored[1].contains("Unknown"));
        assert_eq!(p("foo=bar", true), Err(400));
    }

    #[test]
    fn summary_count() {
        let s = p("_summary=count", true).unwrap();
        assert!(s.summary_count && s.query.with_total);
        assert_eq!(s.query.count, 0);
    }

    #[test]
    fn last_updated_prefixes() {
        let day = DateRange::parse("2024-01-02").unwrap();
        assert_eq!(
            last_updated("gt2024-01-02").unwrap(),
            Condition::LastUpdated {
                from: Some(day.end),
                to: None
            }
        );
        assert_eq!(
            last_updated("le2024-01-02").unwrap(),
            Condition::LastUpdated {
                from: None,
                to: Some(day.end)
            }
        );
        assert_eq!(
            last_updated("ne2024-01-02").unwrap(),
            Condition::LastUpdatedNot {
                from: day.start,
                to: day.end
            }
        );
    }
}
