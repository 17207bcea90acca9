//! From request parameters to a [`ParsedSearch`]: the result parameters (`_count`, `_sort`,
//! `_total`, `_summary`, `_elements`, `_include`, `_revinclude`, `_type`, the cursor) here,
//! the selecting ones in `criteria.rs`. Unknown and unsupported parameters are ignored with a
//! warning, or rejected with `Prefer: handling=strict`; bad values are always `400`.

use oxifhir_model::resource_type;
use oxifhir_model::search_param::SearchParamType;
use oxifhir_store::{SearchQuery, SortField, SortKey};

use super::criteria::{self, Built};
use super::table;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::route::{known_type, truncate};
use crate::search_params::SearchParams;

/// The name of the paging-cursor parameter in `next` and `previous` links.
pub const CURSOR_PARAM: &str = "_cursor";

/// `_include` / `_revinclude`: resources to add to a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// `_revinclude`: resources of `source_type` that refer to the page's resources.
    pub reverse: bool,
    /// `:iterate`: applied to included resources too (one more level).
    pub iterate: bool,
    pub source_type: String,
    /// The reference parameter of `source_type`; `None` for every one (`Type:*`).
    pub param: Option<String>,
    /// Only targets of this type (`_include=Observation:subject:Patient`).
    pub target_type: Option<String>,
}

/// A search request in store terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSearch {
    pub query: SearchQuery,
    /// `_summary=count`: only the total.
    pub summary_count: bool,
    /// Parameters ignored and other caveats, with why (reported as warnings).
    pub warnings: Vec<String>,
    pub includes: Vec<Include>,
    /// `_elements`: the top-level elements to return of each match.
    pub elements: Option<Vec<String>>,
}

/// The parser's state: settings, parameter table and the warnings so far.
pub(super) struct Parser<'a> {
    pub config: &'a ServerConfig,
    pub params: &'a SearchParams,
    strict: bool,
    warnings: Vec<String>,
}

impl Parser<'_> {
    /// Records a caveat for the searchset's OperationOutcome (once).
    pub(super) fn warn(&mut self, text: String) {
        if !self.warnings.contains(&text) {
            self.warnings.push(text);
        }
    }

    /// A parameter that cannot be honoured: `400` when strict, else a warning.
    fn ignore(&mut self, name: &str, why: String) -> ApiResult<()> {
        if self.strict {
            Err(ApiError::not_supported(why).at(name.to_string()))
        } else {
            self.warn(format!("{why}; it was ignored"));
            Ok(())
        }
    }
}

/// Parameters that shape results rather than select resources.
fn is_result_param(name: &str) -> bool {
    matches!(
        name,
        "_count"
            | "_sort"
            | "_total"
            | "_summary"
            | "_format"
            | "_pretty"
            | "_type"
            | "_elements"
            | "_include"
            | "_revinclude"
            | "_include:iterate"
            | "_revinclude:iterate"
            | CURSOR_PARAM
    )
}

/// Parses search parameters for `resource_type` (`None`: system search, `_type` chooses).
/// With `strict`, a parameter that cannot be honoured is `400`; otherwise it is ignored and
/// reported in `warnings`.
pub fn parse(
    config: &ServerConfig,
    params: &SearchParams,
    resource_type: Option<&str>,
    pairs: &[(String, String)],
    strict: bool,
) -> ApiResult<ParsedSearch> {
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        return Err(ApiError::bad_request(format!(
            "The search parameter '{}' contains the NUL character",
            truncate(&name.replace('\0', "\\0"), 64)
        )));
    }
    let mut parser = Parser {
        config,
        params,
        strict,
        warnings: Vec::new(),
    };
    let mut query = SearchQuery {
        count: config.default_count,
        resource_types: resource_type
            .map(|t| vec![t.to_string()])
            .unwrap_or_default(),
        ..Default::default()
    };
    if resource_type.is_none() {
        for (_, value) in pairs.iter().filter(|(k, _)| k == "_type") {
            for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let t = known_type(t)?;
                if !query.resource_types.contains(&t) {
                    query.resource_types.push(t);
                }
            }
        }
    }
    let types = query.resource_types.clone();
    let mut parsed = ParsedSearch {
        query,
        summary_count: false,
        warnings: Vec::new(),
        includes: Vec::new(),
        elements: None,
    };
    let mut total = false;
    for (raw_name, value) in pairs {
        if is_result_param(raw_name) {
            result_param(
                &mut parser,
                &mut parsed,
                &mut total,
                resource_type,
                raw_name,
                value,
            )?;
            continue;
        }
        let built = if let Some(spec) = raw_name.strip_prefix("_has:") {
            parser.has(spec, value)?
        } else if let Some((head, tail)) = raw_name.split_once('.') {
            parser.chain(&types, head, tail, value)?
        } else {
            let (name, modifier) = match raw_name.split_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (raw_name.as_str(), None),
            };
            parser.condition(&types, name, modifier, value)?
        };
        match built {
            Built::Condition(c) => parsed.query.conditions.push(c),
            Built::Nothing => {}
            Built::Unknown(why) => parser.ignore(raw_name, why)?,
        }
    }
    if parsed.summary_count {
        parsed.query.count = 0;
        total = true;
    }
    parsed.query.with_total = total;
    parsed.warnings = parser.warnings;
    Ok(parsed)
}

fn count(config: &ServerConfig, value: &str) -> ApiResult<usize> {
    let n: usize = value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "_count must be a non-negative integer, not '{}'",
            truncate(value, 40)
        ))
    })?;
    Ok(n.min(config.max_count))
}

fn result_param(
    parser: &mut Parser<'_>,
    parsed: &mut ParsedSearch,
    total: &mut bool,
    resource_type: Option<&str>,
    name: &str,
    value: &str,
) -> ApiResult<()> {
    match name {
        "_count" => parsed.query.count = count(parser.config, value)?,
        "_sort" => sort(parser, parsed, value)?,
        "_total" => match value {
            "none" => {}
            "accurate" | "estimate" => *total = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "_total must be none, estimate or accurate, not '{}'",
                    truncate(other, 40)
                )));
            }
        },
        "_summary" => match value {
            "count" => parsed.summary_count = true,
            "false" => {}
            other => parser.ignore(
                name,
                format!("_summary={} is not supported", truncate(other, 40)),
            )?,
        },
        "_elements" => parsed.elements = Some(elements(value)?),
        "_include" | "_revinclude" | "_include:iterate" | "_revinclude:iterate" => {
            if let Some(include) = include(parser, name, value)? {
                parsed.includes.push(include);
            }
        }
        CURSOR_PARAM => parsed.query.cursor = Some(value.to_string()),
        "_type" if resource_type.is_some() => parser.ignore(
            name,
            "_type applies to system-level searches only".to_string(),
        )?,
        _ => {}
    }
    Ok(())
}

/// `_sort=a,-b`: `_id`, `_lastUpdated` and any parameter stored in an index table.
fn sort(parser: &mut Parser<'_>, parsed: &mut ParsedSearch, value: &str) -> ApiResult<()> {
    let types = parsed.query.resource_types.clone();
    for key in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let (descending, code) = match key.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, key),
        };
        let field = match code {
            "_id" => SortField::Id,
            "_lastUpdated" => SortField::LastUpdated,
            other => {
                let found = parser.resolve(&types, other).and_then(|p| {
                    let usable = p.def.kind != SearchParamType::Composite
                        && types.iter().all(|t| table::supported(&p, t));
                    let table = table::table_of(p.def).filter(|_| usable)?;
                    // A union of parameters sorts by its parts' values together.
                    let params = match criteria::union_parts(&types, &p) {
                        Ok(Some(parts)) => parts.iter().map(|&c| c.to_owned()).collect(),
                        Ok(None) => vec![p.def.code.clone()],
                        Err(_) => return None,
                    };
                    Some((params, table, p.pending))
                });
                match found {
                    Some((params, table, pending)) => {
                        if pending {
                            parser.warn(format!(
                                "Sorting by '{other}', which is not yet indexed for resources \
                                 stored before it was defined"
                            ));
                        }
                        SortField::Param { params, table }
                    }
                    None => {
                        parser.ignore(
                            "_sort",
                            format!("Sorting by '{}' is not supported", truncate(other, 64)),
                        )?;
                        continue;
                    }
                }
            }
        };
        if parsed.query.sort.iter().all(|k| k.field != field) {
            parsed.query.sort.push(SortKey { field, descending });
        }
    }
    Ok(())
}

/// `_elements=a,b` (names may carry the type, `Patient.name`).
fn elements(value: &str) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let name = item.split_once('.').map_or(item, |(_, n)| n);
        let valid = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ApiError::bad_request(format!(
                "_elements: '{}' is not an element name",
                truncate(item, 64)
            )));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

/// `_include=Type:param[:Target]`, `_include=Type:*`, `_revinclude=Type:param`, each also
/// with `:iterate`.
fn include(parser: &mut Parser<'_>, name: &str, value: &str) -> ApiResult<Option<Include>> {
    let reverse = name.starts_with("_revinclude");
    let iterate = name.ends_with(":iterate");
    let parts: Vec<&str> = value.split(':').collect();
    let (source, param, target) = match parts.as_slice() {
        [s, p] => (*s, *p, None),
        [s, p, t] => (*s, *p, Some(*t)),
        _ => {
            return Err(ApiError::bad_request(format!(
                "{name} takes Type:parameter or Type:parameter:TargetType, not '{}'",
                truncate(value, 80)
            )));
        }
    };
    if !resource_type::is_known(source) {
        return Err(ApiError::bad_request(format!(
            "{name}: unknown resource type '{}'",
            truncate(source, 64)
        )));
    }
    if let Some(t) = target
        && !resource_type::is_known(t)
    {
        return Err(ApiError::bad_request(format!(
            "{name}: unknown target type '{}'",
            truncate(t, 64)
        )));
    }
    let param = if param == "*" && !reverse {
        None
    } else {
        let scope = [source.to_string()];
        let found = parser
            .resolve(&scope, param)
            .filter(|p| p.def.kind == SearchParamType::Reference && table::supported(p, source));
        match found {
            Some(p) => Some(p.def.code.clone()),
            None => {
                parser.ignore(
                    name,
                    format!(
                        "{name}: '{}' is not a reference parameter of {source}",
                        truncate(param, 64)
                    ),
                )?;
                return Ok(None);
            }
        }
    };
    Ok(Some(Include {
        reverse,
        iterate,
        source_type: source.to_string(),
        param,
        target_type: target.map(str::to_string),
    }))
}
