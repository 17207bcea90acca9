//! The parser, table-driven: parameters in, store query out.

use oxifhir_model::DateRange;
use oxifhir_store::{
    Condition, EntryTest, IndexTable, ReferenceTest, SortField, SortKey, StringTest, TokenSystem,
    TokenTest,
};

use super::*;

fn p(resource_type: Option<&str>, query: &str, strict: bool) -> Result<ParsedSearch, u16> {
    parse(
        &ServerConfig::default(),
        &SearchParams::r4(),
        resource_type,
        &parse_query(query),
        strict,
    )
    .map_err(|e| e.status())
}

fn patient(query: &str) -> Result<ParsedSearch, u16> {
    p(Some("Patient"), query, true)
}

fn conditions(resource_type: &str, query: &str) -> Vec<Condition> {
    p(Some(resource_type), query, true)
        .unwrap_or_else(|s| panic!("{query}: {s}"))
        .query
        .conditions
}

fn matching(param: &str, tests: Vec<EntryTest>) -> Condition {
    Condition::Match {
        param: param.into(),
        tests,
    }
}

fn starts(s: &str) -> EntryTest {
    EntryTest::String(StringTest::StartsWith(s.into()))
}

#[test]
fn parses_ids_dates_and_paging() {
    let s = patient("_id=a,b&_count=5&_sort=-_lastUpdated").unwrap();
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
    let s = patient("_lastUpdated=ge2024-01-01&_lastUpdated=lt2024-02").unwrap();
    assert_eq!(s.query.conditions.len(), 2);
    assert_eq!(patient("_count=99999").unwrap().query.count, 1000);
    assert_eq!(patient("_count=-1"), Err(400));
    assert_eq!(patient("_lastUpdated=2024-13"), Err(400));
    let day = DateRange::parse("2024-01-02").unwrap();
    assert_eq!(
        conditions("Patient", "_lastUpdated=gt2024-01-02,le2023"),
        vec![Condition::Any(vec![
            Condition::LastUpdated {
                from: Some(day.end),
                to: None
            },
            Condition::LastUpdated {
                from: None,
                to: Some(DateRange::parse("2023").unwrap().end)
            }
        ])]
    );
}

#[test]
fn unknown_parameters_warn_or_fail() {
    let s = p(Some("Patient"), "_text=smith&foo=bar", false).unwrap();
    assert_eq!(s.warnings.len(), 2);
    assert!(s.warnings[0].contains("not supported"), "{:?}", s.warnings);
    assert!(s.warnings[1].contains("Unknown"));
    assert_eq!(patient("foo=bar"), Err(400));
    // Unsupported modifiers are rejected either way.
    assert_eq!(p(Some("Patient"), "name:below=x", false).err(), Some(400));
    assert_eq!(
        p(Some("Patient"), "gender:in=http://vs", false).err(),
        Some(400)
    );
}

#[test]
fn summary_count_and_totals() {
    let s = patient("_summary=count").unwrap();
    assert!(s.summary_count && s.query.with_total);
    assert_eq!(s.query.count, 0);
    assert!(patient("_total=accurate").unwrap().query.with_total);
    assert_eq!(patient("_total=maybe"), Err(400));
}

#[test]
fn strings_tokens_and_modifiers() {
    assert_eq!(
        conditions("Patient", "name=Müller,O%27Brien"),
        vec![matching("name", vec![starts("muller"), starts("o'brien")])]
    );
    assert_eq!(
        conditions("Patient", "name:exact=Müller&family:contains=LL"),
        vec![
            matching(
                "name",
                vec![EntryTest::String(StringTest::Exact("Müller".into()))]
            ),
            matching(
                "family",
                vec![EntryTest::String(StringTest::Contains("ll".into()))]
            )
        ]
    );
    assert_eq!(
        conditions("Patient", "gender:not=male&identifier=urn:mrn%7C123"),
        vec![
            Condition::NoMatch {
                param: "gender".into(),
                tests: vec![EntryTest::Token(TokenTest::Code {
                    system: TokenSystem::Any,
                    code: "male".into()
                })]
            },
            matching(
                "identifier",
                vec![EntryTest::Token(TokenTest::Code {
                    system: TokenSystem::Is("urn:mrn".into()),
                    code: "123".into()
                })]
            )
        ]
    );
    assert_eq!(
        conditions("Patient", "identifier:of-type=http://t%7CMR%7C9"),
        vec![matching(
            "identifier:of-type",
            vec![EntryTest::Token(TokenTest::Code {
                system: TokenSystem::Is("http://t".into()),
                code: "MR|9".into()
            })]
        )]
    );
    assert_eq!(
        conditions("Patient", "birthdate:missing=true&gender:missing=false"),
        vec![
            Condition::NoMatch {
                param: "birthdate".into(),
                tests: vec![EntryTest::Exists(IndexTable::Date)]
            },
            matching("gender", vec![EntryTest::Exists(IndexTable::Token)])
        ]
    );
    assert_eq!(patient("gender:missing=maybe"), Err(400));
    assert!(conditions("Patient", "name=&gender=").is_empty());
    assert_eq!(patient("birthdate=not-a-date"), Err(400));
    assert_eq!(patient("birthdate:exact=2000"), Err(400));
}

#[test]
fn references_chains_and_has() {
    let target = |types: &[&str], id: &str| {
        EntryTest::Reference(ReferenceTest::Target {
            types: types.iter().map(|t| t.to_string()).collect(),
            ids: vec![id.into()],
        })
    };
    assert_eq!(
        conditions("Observation", "subject=Patient/1&performer:Practitioner=2"),
        vec![
            matching("subject", vec![target(&["Patient"], "1")]),
            matching("performer", vec![target(&["Practitioner"], "2")])
        ]
    );
    assert_eq!(
        p(Some("Observation"), "subject:Medication=1", true),
        Err(400)
    );
    assert_eq!(
        conditions("Observation", "subject:Patient.name=smi"),
        vec![Condition::Chain {
            param: "subject".into(),
            target_type: "Patient".into(),
            conditions: vec![matching("name", vec![starts("smi")])]
        }]
    );
    // Without a type, every target type that has the parameter.
    let Condition::Any(chains) = &conditions("Observation", "subject.name=x")[0] else {
        panic!("an Any of chains");
    };
    let types: Vec<&str> = chains
        .iter()
        .map(|c| match c {
            Condition::Chain { target_type, .. } => target_type.as_str(),
            _ => "?",
        })
        .collect();
    assert_eq!(
        types,
        ["Patient", "Location"],
        "Group and Device have no name"
    );
    assert_eq!(
        p(
            Some("Observation"),
            "subject:Patient.organization.name=x",
            true
        ),
        Err(400)
    );
    assert_eq!(
        conditions("Patient", "_has:Observation:patient:code=1234-5"),
        vec![Condition::ReferencedBy {
            source_type: "Observation".into(),
            param: Some("patient".into()),
            conditions: vec![matching(
                "code",
                vec![EntryTest::Token(TokenTest::Code {
                    system: TokenSystem::Any,
                    code: "1234-5".into()
                })]
            )]
        }]
    );
    assert_eq!(patient("_has:Observation:code:code=1"), Err(400));
    assert_eq!(patient("_has:Observation:patient:_has:X:y:z=1"), Err(400));
}

#[test]
fn sort_includes_and_elements() {
    let s = patient("_sort=birthdate,-name,_id&_include=Patient:organization&_revinclude:iterate=Observation:subject&_elements=name,Patient.gender").unwrap();
    assert_eq!(
        s.query.sort,
        vec![
            SortKey {
                field: SortField::Param {
                    params: vec!["birthdate".into()],
                    table: IndexTable::Date
                },
                descending: false
            },
            SortKey {
                field: SortField::Param {
                    params: vec!["name".into()],
                    table: IndexTable::String
                },
                descending: true
            },
            SortKey {
                field: SortField::Id,
                descending: false
            }
        ]
    );
    assert_eq!(
        s.includes,
        vec![
            Include {
                reverse: false,
                iterate: false,
                source_type: "Patient".into(),
                param: Some("organization".into()),
                target_type: None
            },
            Include {
                reverse: true,
                iterate: true,
                source_type: "Observation".into(),
                param: Some("subject".into()),
                target_type: None
            }
        ]
    );
    assert_eq!(
        s.elements,
        Some(vec!["name".to_string(), "gender".to_string()])
    );
    assert_eq!(patient("_sort=_text"), Err(400));
    assert_eq!(patient("_include=Patient"), Err(400));
    assert_eq!(patient("_include=Nope:x"), Err(400));
    assert_eq!(patient("_elements=Na-me"), Err(400));
    let lenient = p(
        Some("Patient"),
        "_sort=nope,_id&_include=Patient:name",
        false,
    )
    .unwrap();
    assert_eq!(lenient.query.sort.len(), 1);
    assert!(lenient.includes.is_empty());
    assert_eq!(lenient.warnings.len(), 2);
}

#[test]
fn system_search_uses_resource_parameters() {
    let s = p(None, "_type=Patient,Observation&_tag=x&_id=1", true).unwrap();
    assert_eq!(s.query.resource_types, ["Patient", "Observation"]);
    assert_eq!(s.query.conditions.len(), 2);
    assert_eq!(p(None, "_type=Nope", true).err(), Some(400));
    // `name` is not a parameter of every type.
    assert_eq!(p(None, "name=x", true).err(), Some(400));
    assert_eq!(
        p(None, "_type=Patient&name=x", true)
            .unwrap()
            .query
            .conditions
            .len(),
        1
    );
}
