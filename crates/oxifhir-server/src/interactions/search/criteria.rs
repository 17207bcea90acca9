//! Search parameters that select resources, turned into store [`Condition`]s: one parameter
//! with its modifier and comma-separated values (alternatives), a chain one level deep
//! (`subject:Patient.name=x`) and a reverse chain (`_has:Observation:subject:code=x`).
//! Repeated parameters are separate conditions, all of which must hold.

use oxifhir_model::index::composite;
use oxifhir_model::resource_type;
use oxifhir_model::search_param::{self, SearchParamDef, SearchParamType};
use oxifhir_store::{Condition, DateTest, EntryTest, Prefix, TokenSystem, TokenTest, UriTest};

use super::parse::Parser;
use super::table::{self, is_resource_column};
use super::values::{self, split_unescaped};
use crate::error::{ApiError, ApiResult};
use crate::route::truncate;
use crate::search_params::{ParamRef, SearchParams};

/// What one parameter contributes to a search.
pub(super) enum Built {
    /// A condition on the resources.
    Condition(Condition),
    /// Nothing: every value was empty.
    Nothing,
    /// The parameter is not one this server can search by; `String` says why.
    Unknown(String),
}

fn unsupported_modifier(name: &str, modifier: &str) -> ApiError {
    ApiError::not_supported(format!(
        "The modifier ':{}' is not supported for search parameter '{}'",
        truncate(modifier, 40),
        truncate(name, 64)
    ))
    .at(name.to_string())
}

/// The non-empty comma-separated values of `value`.
fn alternatives(value: &str) -> Vec<&str> {
    split_unescaped(value, ',')
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect()
}

/// `[from, to)` of `meta.lastUpdated` for a date test.
fn last_updated(date: DateTest) -> Condition {
    let (start, end) = (date.start, date.end);
    match date.prefix {
        Prefix::Eq => Condition::LastUpdated {
            from: Some(start),
            to: Some(end),
        },
        Prefix::Ne => Condition::LastUpdatedNot {
            from: start,
            to: end,
        },
        Prefix::Gt | Prefix::Sa => Condition::LastUpdated {
            from: Some(end),
            to: None,
        },
        Prefix::Ge => Condition::LastUpdated {
            from: Some(start),
            to: None,
        },
        Prefix::Lt | Prefix::Eb => Condition::LastUpdated {
            from: None,
            to: Some(start),
        },
        Prefix::Le => Condition::LastUpdated {
            from: None,
            to: Some(end),
        },
        Prefix::Ap => Condition::LastUpdated {
            from: Some(start),
            to: Some(end),
        },
    }
}

/// The parts of `param` when it is a union of other parameters
/// ([`search_param::union_parts`]) for each of the searched `types`: those are indexed, it is
/// not. `Err` says why a parameter that is a union for some of the types only cannot be
/// searched across them.
pub(super) fn union_parts(
    types: &[String],
    param: &ParamRef<'_>,
) -> Result<Option<&'static [&'static str]>, String> {
    if search_param::by_url(&param.def.url).is_none() {
        return Ok(None);
    }
    let mut found = types
        .iter()
        .map(|t| search_param::union_parts(t, &param.def.code));
    let first = found.next().flatten();
    if found.all(|parts| parts == first) {
        Ok(first)
    } else {
        Err(format!(
            "Search parameter '{}' cannot be searched across these types together",
            param.def.code
        ))
    }
}

/// `condition` on union parameter `code` as the same condition on its `parts`: a match is a
/// match on any of them, a negated match (`:not`, `:missing=true`) one on none of them.
/// Parameter names that extend `code` (a composite's keys, `:of-type`) extend each part.
fn on_parts(condition: Condition, code: &str, parts: &[&str]) -> Condition {
    // What follows `code` in a parameter name of its own: nothing, a composite key, a modifier.
    let suffix_of = |param: &str| -> Option<String> {
        param
            .strip_prefix(code)
            .filter(|rest| rest.is_empty() || rest.starts_with(['$', ':']))
            .map(str::to_owned)
    };
    let each = |suffix: String,
                tests: &[EntryTest],
                on_part: fn(String, Vec<EntryTest>) -> Condition|
     -> Vec<Condition> {
        parts
            .iter()
            .map(|part| on_part(format!("{part}{suffix}"), tests.to_vec()))
            .collect()
    };
    match condition {
        Condition::Match { param, tests } => match suffix_of(&param) {
            Some(suffix) => Condition::Any(each(suffix, &tests, |param, tests| Condition::Match {
                param,
                tests,
            })),
            None => Condition::Match { param, tests },
        },
        Condition::MatchPrefixed { prefix, tests } => match suffix_of(&prefix) {
            Some(suffix) => Condition::Any(each(suffix, &tests, |prefix, tests| {
                Condition::MatchPrefixed { prefix, tests }
            })),
            None => Condition::MatchPrefixed { prefix, tests },
        },
        Condition::NoMatch { param, tests } => match suffix_of(&param) {
            Some(suffix) => Condition::All(each(suffix, &tests, |param, tests| {
                Condition::NoMatch { param, tests }
            })),
            None => Condition::NoMatch { param, tests },
        },
        Condition::Any(list) => {
            Condition::Any(list.into_iter().map(|c| on_parts(c, code, parts)).collect())
        }
        Condition::All(list) => {
            Condition::All(list.into_iter().map(|c| on_parts(c, code, parts)).collect())
        }
        other => other,
    }
}

fn one_or_any(mut conditions: Vec<Condition>) -> Built {
    match conditions.len() {
        0 => Built::Nothing,
        1 => Built::Condition(conditions.remove(0)),
        _ => Built::Condition(Condition::Any(conditions)),
    }
}

impl<'a> Parser<'a> {
    /// Finds parameter `code` for the searched `types` (one type; or several, where it must
    /// be the same kind of parameter for each; or none, meaning every type: only the
    /// `Resource` parameters).
    pub(super) fn resolve(&self, types: &[String], code: &str) -> Option<ParamRef<'a>> {
        let params: &'a SearchParams = self.params;
        match types {
            [] => params.lookup("Resource", code),
            [one] => params.lookup(one, code),
            [first, rest @ ..] => {
                let found = params.lookup(first, code)?;
                rest.iter()
                    .all(|t| {
                        params
                            .lookup(t, code)
                            .is_some_and(|p| p.def.kind == found.def.kind)
                    })
                    .then_some(found)
            }
        }
    }

    /// True when `param` is searchable on every one of `types` (on `Patient`, standing for
    /// any type, when `types` is empty).
    fn searchable(&self, param: &ParamRef<'_>, types: &[String]) -> bool {
        if types.is_empty() {
            return table::supported(param, "Patient");
        }
        types.iter().all(|t| table::supported(param, t))
    }

    /// The condition of parameter `name` with `modifier` and `value` over `types`.
    pub(super) fn condition(
        &mut self,
        types: &[String],
        name: &str,
        modifier: Option<&str>,
        value: &str,
    ) -> ApiResult<Built> {
        let values = alternatives(value);
        match (name, modifier) {
            ("_id", None | Some("not")) => {
                let ids: Vec<String> = values.iter().map(|v| values::unescape(v)).collect();
                if ids.is_empty() {
                    return Ok(Built::Nothing);
                }
                return Ok(Built::Condition(if modifier.is_some() {
                    Condition::IdNotIn(ids)
                } else {
                    Condition::IdIn(ids)
                }));
            }
            ("_lastUpdated", None) => {
                let conditions = values
                    .iter()
                    .map(|v| values::date(name, v).map(last_updated))
                    .collect::<ApiResult<Vec<_>>>()?;
                return Ok(one_or_any(conditions));
            }
            (code, Some(m)) if is_resource_column(code) => {
                return Err(unsupported_modifier(name, m));
            }
            _ => {}
        }
        let Some(param) = self.resolve(types, name) else {
            return Ok(Built::Unknown(format!(
                "Unknown search parameter '{}'",
                truncate(name, 64)
            )));
        };
        if !self.searchable(&param, types) {
            return Ok(Built::Unknown(format!(
                "Search parameter '{}' is not supported by this server",
                truncate(name, 64)
            )));
        }
        if param.pending {
            self.warn(format!(
                "Search parameter '{}' is not yet indexed for resources stored before it was \
                 defined; results may miss them until $reindex has run",
                param.def.code
            ));
        }
        let parts = match union_parts(types, &param) {
            Ok(parts) => parts,
            Err(why) => return Ok(Built::Unknown(why)),
        };
        let built = self.param_condition(param, name, modifier, value, &values)?;
        Ok(match (built, parts) {
            (Built::Condition(c), Some(parts)) => {
                Built::Condition(on_parts(c, &param.def.code, parts))
            }
            (built, _) => built,
        })
    }

    /// The condition of a resolved, searchable parameter (see [`Parser::condition`]).
    fn param_condition(
        &self,
        param: ParamRef<'_>,
        name: &str,
        modifier: Option<&str>,
        value: &str,
        values: &[&str],
    ) -> ApiResult<Built> {
        let (code, kind) = (param.def.code.clone(), param.def.kind);
        let targets = param.def.target.clone();
        if kind == SearchParamType::Composite {
            if let Some(m) = modifier {
                return Err(unsupported_modifier(name, m));
            }
            let conditions = values
                .iter()
                .map(|v| self.composite(param.def, v))
                .collect::<ApiResult<Vec<_>>>()?;
            return Ok(one_or_any(conditions));
        }
        if modifier == Some("missing") {
            let table =
                table::table_of(param.def).ok_or_else(|| unsupported_modifier(name, "missing"))?;
            let test = vec![EntryTest::Exists(table)];
            return Ok(match value {
                "true" => Built::Condition(Condition::NoMatch {
                    param: code,
                    tests: test,
                }),
                "false" => Built::Condition(Condition::Match {
                    param: code,
                    tests: test,
                }),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "':missing' takes true or false, not '{}'",
                        truncate(other, 40)
                    ))
                    .at(name.to_string()));
                }
            });
        }
        if values.is_empty() {
            return Ok(Built::Nothing);
        }
        let mut param_code = code.clone();
        let mut negated = false;
        let tests: Vec<EntryTest> = match kind {
            SearchParamType::String => match modifier {
                None | Some("exact" | "contains") => {
                    values.iter().map(|v| values::string(v, modifier)).collect()
                }
                Some(m) => return Err(unsupported_modifier(name, m)),
            },
            SearchParamType::Token => match modifier {
                None | Some("text") => values
                    .iter()
                    .map(|v| values::token(name, v, modifier))
                    .collect::<ApiResult<_>>()?,
                Some("not") => {
                    negated = true;
                    values
                        .iter()
                        .map(|v| values::token(name, v, None))
                        .collect::<ApiResult<_>>()?
                }
                Some("of-type") => {
                    param_code = format!("{code}:of-type");
                    values
                        .iter()
                        .map(|v| values::of_type(name, v))
                        .collect::<ApiResult<_>>()?
                }
                Some(m) => return Err(unsupported_modifier(name, m)),
            },
            SearchParamType::Reference => {
                let types = match modifier {
                    None => Vec::new(),
                    Some(t) if resource_type::is_known(t) => {
                        if !targets.is_empty() && !targets.iter().any(|x| x == t) {
                            return Err(ApiError::bad_request(format!(
                                "Search parameter '{name}' cannot refer to {t}"
                            ))
                            .at(name.to_string()));
                        }
                        vec![t.to_string()]
                    }
                    Some(m) => return Err(unsupported_modifier(name, m)),
                };
                values
                    .iter()
                    .map(|v| values::reference(self.config, name, v, &types))
                    .collect::<ApiResult<_>>()?
            }
            SearchParamType::Date | SearchParamType::Number | SearchParamType::Quantity => {
                if let Some(m) = modifier {
                    return Err(unsupported_modifier(name, m));
                }
                values
                    .iter()
                    .map(|v| match kind {
                        SearchParamType::Date => values::date(name, v).map(EntryTest::Date),
                        SearchParamType::Number => values::number(name, v).map(EntryTest::Number),
                        _ => values::quantity(name, v).map(EntryTest::Quantity),
                    })
                    .collect::<ApiResult<_>>()?
            }
            SearchParamType::Uri => match modifier {
                None | Some("below" | "above") => values
                    .iter()
                    .flat_map(|v| values::uri(v, modifier))
                    .collect(),
                Some(m) => return Err(unsupported_modifier(name, m)),
            },
            SearchParamType::Special | SearchParamType::Composite => {
                return Ok(Built::Unknown(format!(
                    "Search parameter '{}' is not supported by this server",
                    truncate(name, 64)
                )));
            }
        };
        Ok(Built::Condition(if negated {
            Condition::NoMatch {
                param: param_code,
                tests,
            }
        } else {
            Condition::Match {
                param: param_code,
                tests,
            }
        }))
    }

    /// One composite value `token$value`: the second component's test on the entries keyed
    /// by the first component's token ([`composite::key`]; by its code alone when it names no
    /// system, [`composite::any_system`]).
    fn composite(&self, def: &SearchParamDef, value: &str) -> ApiResult<Condition> {
        let name = def.code.as_str();
        let bad = |what: &str| {
            ApiError::bad_request(format!(
                "Invalid value '{}' for composite parameter '{name}': {what}",
                truncate(value, 80)
            ))
            .at(name.to_string())
        };
        let Some([_, second]) = composite::parts(def) else {
            return Err(bad("this composite is not supported"));
        };
        let [first_text, second_text] = split_unescaped(value, '$')[..] else {
            return Err(bad("a composite value is token$value"));
        };
        let EntryTest::Token(TokenTest::Code { system, code }) =
            values::token(name, first_text, None)?
        else {
            return Err(bad("the first part needs a code"));
        };
        let test = match second {
            SearchParamType::Token => values::token(name, second_text, None)?,
            SearchParamType::String => values::string(second_text, None),
            SearchParamType::Date => EntryTest::Date(values::date(name, second_text)?),
            SearchParamType::Number => EntryTest::Number(values::number(name, second_text)?),
            SearchParamType::Quantity => EntryTest::Quantity(values::quantity(name, second_text)?),
            SearchParamType::Uri => EntryTest::Uri(UriTest::Is(values::unescape(second_text))),
            SearchParamType::Reference => values::reference(self.config, name, second_text, &[])?,
            SearchParamType::Composite | SearchParamType::Special => {
                return Err(bad("this composite is not supported"));
            }
        };
        let tests = vec![test];
        Ok(match system {
            TokenSystem::Any => Condition::MatchPrefixed {
                prefix: composite::any_system(name, &code),
                tests,
            },
            TokenSystem::None => Condition::Match {
                param: composite::key(name, None, &code),
                tests,
            },
            TokenSystem::Is(system) => Condition::Match {
                param: composite::key(name, Some(&system), &code),
                tests,
            },
        })
    }

    /// A chained parameter `head.tail` (`subject:Patient.name:exact`), one level deep.
    pub(super) fn chain(
        &mut self,
        types: &[String],
        head: &str,
        tail: &str,
        value: &str,
    ) -> ApiResult<Built> {
        let (name, type_modifier) = match head.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (head, None),
        };
        if tail.contains('.') {
            return Err(ApiError::not_supported(format!(
                "Chained parameter '{}': only one level of chaining is supported",
                truncate(&format!("{head}.{tail}"), 80)
            )));
        }
        let Some(param) = self.resolve(types, name) else {
            return Ok(Built::Unknown(format!(
                "Unknown search parameter '{}'",
                truncate(name, 64)
            )));
        };
        if param.def.kind != SearchParamType::Reference || !self.searchable(&param, types) {
            return Err(ApiError::bad_request(format!(
                "Search parameter '{}' is not a reference; it cannot be chained",
                truncate(name, 64)
            )));
        }
        let candidates: Vec<String> = match type_modifier {
            Some(t) if resource_type::is_known(t) => vec![t.to_string()],
            Some(m) => return Err(unsupported_modifier(name, m)),
            None if !param.def.target.is_empty() => param.def.target.clone(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "Chained parameter '{name}' can refer to any type; name one with ':Type'"
                )));
            }
        };
        let param_code = param.def.code.clone();
        let (chained, chained_modifier) = match tail.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (tail, None),
        };
        let mut conditions = Vec::new();
        let mut unknown = None;
        for target in candidates {
            let scope = [target.clone()];
            let known = is_resource_column(chained) || self.resolve(&scope, chained).is_some();
            if !known {
                continue;
            }
            match self.condition(&scope, chained, chained_modifier, value)? {
                Built::Condition(c) => conditions.push(Condition::Chain {
                    param: param_code.clone(),
                    target_type: target,
                    conditions: vec![c],
                }),
                Built::Nothing => return Ok(Built::Nothing),
                Built::Unknown(why) => unknown = Some(why),
            }
        }
        if conditions.is_empty() {
            return Ok(Built::Unknown(unknown.unwrap_or_else(|| {
                format!(
                    "Chained parameter '{}' names no parameter of the types '{name}' refers to",
                    truncate(&format!("{head}.{tail}"), 80)
                )
            })));
        }
        Ok(one_or_any(conditions))
    }

    /// A reverse chain `_has:Type:param:rest` (the part after `_has:`), one level deep.
    pub(super) fn has(&mut self, spec: &str, value: &str) -> ApiResult<Built> {
        let mut parts = spec.splitn(3, ':');
        let (Some(source), Some(reference), Some(rest)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(ApiError::bad_request(format!(
                "'_has:{}' must be _has:Type:parameter:parameter",
                truncate(spec, 80)
            )));
        };
        if rest.starts_with("_has:") {
            return Err(ApiError::not_supported(
                "Only one level of _has is supported",
            ));
        }
        if !resource_type::is_known(source) {
            return Err(ApiError::bad_request(format!(
                "_has: unknown resource type '{}'",
                truncate(source, 64)
            )));
        }
        let scope = [source.to_string()];
        let param_ok = self.resolve(&scope, reference).is_some_and(|p| {
            p.def.kind == SearchParamType::Reference && self.searchable(&p, &scope)
        });
        if !param_ok {
            return Err(ApiError::bad_request(format!(
                "_has: '{}' is not a reference parameter of {source}",
                truncate(reference, 64)
            )));
        }
        let (name, modifier) = match rest.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (rest, None),
        };
        Ok(match self.condition(&scope, name, modifier, value)? {
            Built::Condition(c) => Built::Condition(Condition::ReferencedBy {
                source_type: source.to_string(),
                param: Some(reference.to_string()),
                conditions: vec![c],
            }),
            other => other,
        })
    }
}
