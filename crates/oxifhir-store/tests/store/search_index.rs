//! Searches over index entries: every test kind with its prefixes and modifiers, `:missing`,
//! chains, reverse chains, sorting by parameters with paging both ways, index replacement
//! and the marks of indexed custom parameters. The fixtures are written out below; each
//! expected result was worked out by hand from them.

use oxifhir_model::DateRange;
use oxifhir_model::index::normalize;
use oxifhir_store::{
    Condition, DateEntry, DateTest, EntryTest, IndexEntries, IndexTable, IndexedParam, NumberEntry,
    NumberTest, Prefix, QuantityEntry, QuantityTest, ReferenceEntry, ReferenceTest, SearchQuery,
    SortField, SortKey, Store, StringEntry, StringTest, TokenEntry, TokenSystem, TokenTest,
    UriEntry, UriTest,
};

use crate::harness::{Harness, WriteExt, delete, put, write};

fn string(param: &str, text: &str) -> StringEntry {
    StringEntry {
        param: param.into(),
        normalized: normalize(text),
        exact: text.into(),
    }
}

fn token(param: &str, system: Option<&str>, code: &str, text: Option<&str>) -> TokenEntry {
    TokenEntry {
        param: param.into(),
        system: system.map(Into::into),
        code: Some(code.into()),
        text: text.map(normalize),
    }
}

fn reference(param: &str, url: &str) -> ReferenceEntry {
    let target = oxifhir_model::fhirpath::reference_target(url);
    ReferenceEntry {
        param: param.into(),
        target_type: target.map(|t| t.0.into()),
        target_id: target.map(|t| t.1.into()),
        url: url.into(),
    }
}

fn range(text: &str) -> DateRange {
    DateRange::parse(text).expect("date")
}

fn period(param: &str, from: &str, to: &str) -> DateEntry {
    DateEntry {
        param: param.into(),
        start: range(from).start,
        end: range(to).end - 1,
    }
}

fn date(param: &str, text: &str) -> DateEntry {
    period(param, text, text)
}

fn number(param: &str, value: f64, low: f64, high: f64) -> NumberEntry {
    NumberEntry {
        param: param.into(),
        value,
        low,
        high,
    }
}

fn quantity(value: f64, system: Option<&str>, code: Option<&str>, unit: &str) -> QuantityEntry {
    QuantityEntry {
        param: "value-quantity".into(),
        value,
        low: value - 0.5,
        high: value + 0.5,
        system: system.map(Into::into),
        code: code.map(Into::into),
        unit: Some(unit.into()),
    }
}

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

/// Patients pa, pb, pc (pd deleted); Observations o1..o4 about them; ValueSets vs1..vs3.
async fn seed(store: &dyn Store) {
    let patients = [
        (
            "pa",
            IndexEntries {
                strings: vec![string("name", "Müller"), string("name", "Anna")],
                tokens: vec![
                    token("gender", None, "female", None),
                    token("identifier", Some("urn:mrn"), "123", Some("Medical record")),
                ],
                dates: vec![date("birthdate", "1980-05-01")],
                ..Default::default()
            },
        ),
        (
            "pb",
            IndexEntries {
                strings: vec![string("name", "Smith"), string("name", "John")],
                tokens: vec![
                    token("gender", None, "male", None),
                    token("identifier", Some("urn:mrn"), "456", None),
                ],
                dates: vec![date("birthdate", "1990")],
                ..Default::default()
            },
        ),
        (
            "pc",
            IndexEntries {
                strings: vec![string("name", "Smithson")],
                tokens: vec![token("identifier", None, "123", None)],
                ..Default::default()
            },
        ),
        (
            "pd",
            IndexEntries {
                strings: vec![string("name", "Smith")],
                ..Default::default()
            },
        ),
    ];
    for (n, (id, index)) in patients.into_iter().enumerate() {
        write(
            store,
            put("Patient", id, 1, 1_000 + n as i64).with_index(index),
        )
        .await
        .expect("patient");
    }
    write(store, delete("Patient", "pd", 2, 2_000))
        .await
        .expect("delete pd");
    let observations = [
        (
            "o1",
            IndexEntries {
                tokens: vec![token("code", Some(LOINC), "8867-4", Some("Heart rate"))],
                references: vec![reference("subject", "Patient/pa")],
                dates: vec![date("date", "2021-01-15T10:00:00Z")],
                numbers: vec![number("length", 100.0, 99.5, 100.5)],
                quantities: vec![quantity(72.0, Some(UCUM), Some("/min"), "beats/minute")],
                ..Default::default()
            },
        ),
        (
            "o2",
            IndexEntries {
                tokens: vec![token(
                    "code",
                    Some(LOINC),
                    "8480-6",
                    Some("Systolic blood pressure"),
                )],
                references: vec![reference("subject", "Patient/pb")],
                dates: vec![date("date", "2021-02-01")],
                numbers: vec![number("length", 1.5, 1.495, 1.505)],
                quantities: vec![quantity(120.0, Some(UCUM), Some("mm[Hg]"), "mmHg")],
                ..Default::default()
            },
        ),
        (
            "o3",
            IndexEntries {
                tokens: vec![token("code", Some(LOINC), "8867-4", None)],
                references: vec![reference("subject", "Patient/pc")],
                dates: vec![period("date", "2020-12-30", "2021-01-02")],
                numbers: vec![number("length", 100.4, 100.35, 100.45)],
                quantities: vec![quantity(95.5, None, None, "/min")],
                ..Default::default()
            },
        ),
        (
            "o4",
            IndexEntries {
                tokens: vec![token(
                    "code",
                    Some("http://snomed.info/sct"),
                    "8867-4",
                    None,
                )],
                references: vec![reference("subject", "http://other.org/fhir/Patient/pa")],
                ..Default::default()
            },
        ),
    ];
    for (id, index) in observations {
        write(store, put("Observation", id, 1, 3_000).with_index(index))
            .await
            .expect("observation");
    }
    for (id, url) in [
        ("vs1", "http://example.org/fhir/ValueSet/a"),
        ("vs2", "http://example.org/fhir/ValueSet/a/b"),
        ("vs3", "http://example.org/other"),
    ] {
        let index = IndexEntries {
            uris: vec![UriEntry {
                param: "url".into(),
                value: url.into(),
            }],
            ..Default::default()
        };
        write(store, put("ValueSet", id, 1, 4_000).with_index(index))
            .await
            .expect("value set");
    }
}

fn query(resource_type: &str, conditions: Vec<Condition>) -> SearchQuery {
    SearchQuery {
        resource_types: if resource_type.is_empty() {
            vec![]
        } else {
            vec![resource_type.into()]
        },
        conditions,
        count: 100,
        ..Default::default()
    }
}

async fn ids(store: &dyn Store, query: SearchQuery) -> Vec<String> {
    let page = store.search(&query).await.expect("search");
    page.resources.into_iter().map(|r| r.id).collect()
}

fn matching(param: &str, test: EntryTest) -> Condition {
    Condition::Match {
        param: param.into(),
        tests: vec![test],
    }
}

fn starts(prefix: &str) -> EntryTest {
    EntryTest::String(StringTest::StartsWith(prefix.into()))
}

fn code(system: TokenSystem, code: &str) -> EntryTest {
    EntryTest::Token(TokenTest::Code {
        system,
        code: code.into(),
    })
}

async fn strings_and_tokens(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let patients = |c: Vec<Condition>| ids(store, query("Patient", c));
    assert_eq!(
        patients(vec![matching("name", starts("smi"))]).await,
        ["pb", "pc"]
    );
    assert_eq!(
        patients(vec![matching("name", starts("mul"))]).await,
        ["pa"]
    );
    let exact = |s: &str| EntryTest::String(StringTest::Exact(s.into()));
    assert_eq!(
        patients(vec![matching("name", exact("Smith"))]).await,
        ["pb"]
    );
    assert!(
        patients(vec![matching("name", exact("smith"))])
            .await
            .is_empty()
    );
    let contains = |s: &str| EntryTest::String(StringTest::Contains(s.into()));
    assert_eq!(
        patients(vec![matching("name", contains("ll"))]).await,
        ["pa"]
    );
    assert_eq!(
        patients(vec![matching("name", contains("th"))]).await,
        ["pb", "pc"]
    );
    assert!(
        patients(vec![matching("name", contains("%"))])
            .await
            .is_empty()
    );
    let either = Condition::Match {
        param: "name".into(),
        tests: vec![starts("anna"), starts("john")],
    };
    assert_eq!(patients(vec![either]).await, ["pa", "pb"]);
    let not_smith = Condition::NoMatch {
        param: "name".into(),
        tests: vec![starts("smith")],
    };
    assert_eq!(patients(vec![not_smith]).await, ["pa"]);
    // Two conditions on one parameter may hold on different values.
    assert_eq!(
        patients(vec![
            matching("name", starts("smith")),
            matching("name", starts("john"))
        ])
        .await,
        ["pb"]
    );

    assert_eq!(
        patients(vec![matching("gender", code(TokenSystem::Any, "female"))]).await,
        ["pa"]
    );
    assert_eq!(
        patients(vec![matching("identifier", code(TokenSystem::Any, "123"))]).await,
        ["pa", "pc"]
    );
    assert_eq!(
        patients(vec![matching(
            "identifier",
            code(TokenSystem::Is("urn:mrn".into()), "123")
        )])
        .await,
        ["pa"]
    );
    assert_eq!(
        patients(vec![matching("identifier", code(TokenSystem::None, "123"))]).await,
        ["pc"]
    );
    let system = EntryTest::Token(TokenTest::System("urn:mrn".into()));
    assert_eq!(
        patients(vec![matching("identifier", system)]).await,
        ["pa", "pb"]
    );
    let text = |t: &str| EntryTest::Token(TokenTest::Text(t.into()));
    assert_eq!(
        patients(vec![matching("identifier", text("rec"))]).await,
        ["pa"]
    );
    assert_eq!(
        patients(vec![matching("identifier", text("medical r"))]).await,
        ["pa"]
    );
    assert!(
        patients(vec![matching("identifier", text("edical"))])
            .await
            .is_empty()
    );
    let not_female = Condition::NoMatch {
        param: "gender".into(),
        tests: vec![code(TokenSystem::Any, "female")],
    };
    assert_eq!(patients(vec![not_female]).await, ["pb", "pc"]);
    let gender_missing = Condition::NoMatch {
        param: "gender".into(),
        tests: vec![EntryTest::Exists(IndexTable::Token)],
    };
    assert_eq!(patients(vec![gender_missing]).await, ["pc"]);
    let gender_present = matching("gender", EntryTest::Exists(IndexTable::Token));
    assert_eq!(patients(vec![gender_present]).await, ["pa", "pb"]);

    let observations = |c: Vec<Condition>| ids(store, query("Observation", c));
    assert_eq!(
        observations(vec![matching("code", code(TokenSystem::Any, "8867-4"))]).await,
        ["o1", "o3", "o4"]
    );
    assert_eq!(
        observations(vec![matching(
            "code",
            code(TokenSystem::Is(LOINC.into()), "8867-4")
        )])
        .await,
        ["o1", "o3"]
    );
    assert_eq!(
        observations(vec![matching("code", text("blood"))]).await,
        ["o2"]
    );
    // A condition on any type (system search): the pair (type, id) is tested.
    assert_eq!(
        ids(store, query("", vec![matching("name", starts("smith"))])).await,
        ["pb", "pc"]
    );
}

fn date_test(prefix: Prefix, text: &str) -> EntryTest {
    let r = range(text);
    EntryTest::Date(DateTest {
        prefix,
        start: r.start,
        end: r.end,
    })
}

async fn dates(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let on = |prefix: Prefix, text: &str| {
        ids(
            store,
            query(
                "Observation",
                vec![matching("date", date_test(prefix, text))],
            ),
        )
    };
    // o1 2021-01-15T10:00:00Z, o2 2021-02-01, o3 2020-12-30..2021-01-02, o4 none.
    assert_eq!(on(Prefix::Eq, "2021-01").await, ["o1"]);
    assert_eq!(on(Prefix::Eq, "2021").await, ["o1", "o2"]);
    assert_eq!(on(Prefix::Eq, "2021-01-15T10:00:00Z").await, ["o1"]);
    assert_eq!(on(Prefix::Ne, "2021-01").await, ["o2", "o3"]);
    assert_eq!(on(Prefix::Gt, "2021-01").await, ["o2"]);
    assert_eq!(on(Prefix::Lt, "2021-01").await, ["o3"]);
    assert_eq!(on(Prefix::Ge, "2021-01").await, ["o1", "o2"]);
    assert_eq!(on(Prefix::Le, "2021-01").await, ["o1", "o3"]);
    assert_eq!(on(Prefix::Sa, "2021-01").await, ["o2"]);
    assert!(on(Prefix::Eb, "2021-01").await.is_empty());
    assert_eq!(on(Prefix::Eb, "2021-01-10").await, ["o3"]);
    let ap = EntryTest::Date(DateTest {
        prefix: Prefix::Ap,
        start: range("2021-01-14").start,
        end: range("2021-01-15").end,
    });
    assert_eq!(
        ids(store, query("Observation", vec![matching("date", ap)])).await,
        ["o1"]
    );
    let missing = Condition::NoMatch {
        param: "date".into(),
        tests: vec![EntryTest::Exists(IndexTable::Date)],
    };
    assert_eq!(
        ids(store, query("Observation", vec![missing])).await,
        ["o4"]
    );
}

fn number_test(prefix: Prefix, value: f64, low: f64, high: f64) -> NumberTest {
    NumberTest {
        prefix,
        value,
        low,
        high,
    }
}

async fn numbers_and_quantities(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    // length: o1 100, o2 1.50, o3 100.4.
    let on = |n: NumberTest| {
        ids(
            store,
            query(
                "Observation",
                vec![matching("length", EntryTest::Number(n))],
            ),
        )
    };
    let hundred = |p| number_test(p, 100.0, 99.5, 100.5);
    assert_eq!(on(hundred(Prefix::Eq)).await, ["o1", "o3"]);
    assert_eq!(
        on(number_test(Prefix::Eq, 100.0, 99.95, 100.05)).await,
        ["o1"]
    );
    assert_eq!(
        on(number_test(Prefix::Ne, 100.0, 99.95, 100.05)).await,
        ["o2", "o3"]
    );
    assert_eq!(on(hundred(Prefix::Gt)).await, ["o3"]);
    assert_eq!(on(hundred(Prefix::Ge)).await, ["o1", "o3"]);
    assert_eq!(on(hundred(Prefix::Lt)).await, ["o2"]);
    assert_eq!(on(hundred(Prefix::Le)).await, ["o1", "o2"]);
    assert!(on(hundred(Prefix::Sa)).await.is_empty());
    assert_eq!(
        on(number_test(Prefix::Sa, 1.5, 1.45, 1.55)).await,
        ["o1", "o3"]
    );
    assert_eq!(on(hundred(Prefix::Eb)).await, ["o2"]);
    assert_eq!(
        on(number_test(Prefix::Ap, 100.0, 90.0, 110.0)).await,
        ["o1", "o3"]
    );

    // value-quantity: o1 72 UCUM /min, o2 120 UCUM mm[Hg], o3 95.5 unit /min, o4 none.
    let on = |prefix, value: f64, system: Option<&str>, code: Option<&str>| {
        let test = QuantityTest {
            number: number_test(prefix, value, value - 0.5, value + 0.5),
            system: system.map(Into::into),
            code: code.map(Into::into),
        };
        ids(
            store,
            query(
                "Observation",
                vec![matching("value-quantity", EntryTest::Quantity(test))],
            ),
        )
    };
    assert_eq!(on(Prefix::Gt, 80.0, None, None).await, ["o2", "o3"]);
    assert_eq!(on(Prefix::Gt, 80.0, None, Some("/min")).await, ["o3"]);
    assert_eq!(
        on(Prefix::Le, 100.0, Some(UCUM), Some("/min")).await,
        ["o1"]
    );
    assert_eq!(on(Prefix::Eq, 120.0, Some(UCUM), None).await, ["o2"]);
    let missing = Condition::NoMatch {
        param: "value-quantity".into(),
        tests: vec![EntryTest::Exists(IndexTable::Quantity)],
    };
    assert_eq!(
        ids(store, query("Observation", vec![missing])).await,
        ["o4"]
    );
}

async fn references_chains_and_uris(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let observations = |c: Vec<Condition>| ids(store, query("Observation", c));
    let target = |types: &[&str], targets: &[&str]| {
        EntryTest::Reference(ReferenceTest::Target {
            types: types.iter().map(|t| t.to_string()).collect(),
            ids: targets.iter().map(|t| t.to_string()).collect(),
        })
    };
    assert_eq!(
        observations(vec![matching("subject", target(&["Patient"], &["pa"]))]).await,
        ["o1", "o4"]
    );
    assert_eq!(
        observations(vec![matching("subject", target(&[], &["pa", "pb"]))]).await,
        ["o1", "o2", "o4"]
    );
    assert!(
        observations(vec![matching("subject", target(&["Group"], &["pa"]))])
            .await
            .is_empty()
    );
    let url = EntryTest::Reference(ReferenceTest::Url(
        "http://other.org/fhir/Patient/pa".into(),
    ));
    assert_eq!(observations(vec![matching("subject", url)]).await, ["o4"]);

    let chain = |conditions| Condition::Chain {
        param: "subject".into(),
        target_type: "Patient".into(),
        conditions,
    };
    assert_eq!(
        observations(vec![chain(vec![matching("name", starts("smi"))])]).await,
        ["o2", "o3"]
    );
    assert_eq!(
        observations(vec![chain(vec![Condition::IdIn(vec!["pc".into()])])]).await,
        ["o3"]
    );
    // A chain never reaches a deleted resource.
    assert!(
        observations(vec![chain(vec![Condition::IdIn(vec!["pd".into()])])])
            .await
            .is_empty()
    );

    let referenced = Condition::ReferencedBy {
        source_type: "Observation".into(),
        param: Some("subject".into()),
        conditions: vec![matching("code", code(TokenSystem::Any, "8480-6"))],
    };
    assert_eq!(ids(store, query("Patient", vec![referenced])).await, ["pb"]);
    let any_param = Condition::ReferencedBy {
        source_type: "Observation".into(),
        param: None,
        conditions: vec![Condition::IdIn(vec!["o1".into(), "o3".into(), "o4".into()])],
    };
    assert_eq!(ids(store, query("", vec![any_param])).await, ["pa", "pc"]);

    let value_sets = |test| {
        ids(
            store,
            query("ValueSet", vec![matching("url", EntryTest::Uri(test))]),
        )
    };
    assert_eq!(
        value_sets(UriTest::Is("http://example.org/fhir/ValueSet/a".into())).await,
        ["vs1"]
    );
    assert_eq!(
        value_sets(UriTest::Below("http://example.org/fhir/".into())).await,
        ["vs1", "vs2"]
    );
    assert_eq!(
        value_sets(UriTest::OneOf(vec![
            "http://example.org/fhir/ValueSet/a".into(),
            "http://example.org/other".into(),
            "http://example.org".into()
        ]))
        .await,
        ["vs1", "vs3"]
    );
}

fn by(param: &str, table: IndexTable, descending: bool) -> SortKey {
    SortKey {
        field: SortField::Param {
            params: vec![param.into()],
            table,
        },
        descending,
    }
}

/// Every page of `query` by `count`, forwards; then the same pages walked backwards through
/// the `previous` cursors must come out in the same order.
async fn pages_both_ways(store: &dyn Store, query: &SearchQuery, count: usize) -> Vec<String> {
    let mut q = SearchQuery {
        count,
        ..query.clone()
    };
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut last_previous = None;
    loop {
        let page = store.search(&q).await.expect("page");
        pages.push(page.resources.iter().map(|r| r.id.clone()).collect());
        last_previous = page.previous.clone().or(last_previous);
        match page.next {
            Some(next) => q.cursor = Some(next),
            None => break,
        }
        assert!(pages.len() < 100, "paging does not end");
    }
    let mut back = vec![pages.last().cloned().unwrap_or_default()];
    let mut cursor = if pages.len() > 1 { last_previous } else { None };
    while let Some(c) = cursor {
        let page = store
            .search(&SearchQuery {
                cursor: Some(c),
                ..q.clone()
            })
            .await
            .expect("previous page");
        back.push(page.resources.iter().map(|r| r.id.clone()).collect());
        cursor = page.previous;
        assert!(back.len() <= pages.len(), "previous links do not end");
    }
    back.reverse();
    assert_eq!(back, pages, "backwards by {count}");
    pages.concat()
}

async fn sorting_by_parameters(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let sorted = |resource_type: &str, sort: Vec<SortKey>| {
        let q = SearchQuery {
            sort,
            ..query(resource_type, vec![])
        };
        async move {
            let whole = ids(store, q.clone()).await;
            for count in [1, 2, 3] {
                assert_eq!(pages_both_ways(store, &q, count).await, whole, "by {count}");
            }
            whole
        }
    };
    // birthdate: pa 1980-05-01, pb 1990, pc none (last either way).
    assert_eq!(
        sorted("Patient", vec![by("birthdate", IndexTable::Date, false)]).await,
        ["pa", "pb", "pc"]
    );
    assert_eq!(
        sorted("Patient", vec![by("birthdate", IndexTable::Date, true)]).await,
        ["pb", "pa", "pc"]
    );
    // name: smallest values anna, john, smithson; largest muller, smith, smithson.
    assert_eq!(
        sorted("Patient", vec![by("name", IndexTable::String, false)]).await,
        ["pa", "pb", "pc"]
    );
    assert_eq!(
        sorted("Patient", vec![by("name", IndexTable::String, true)]).await,
        ["pc", "pb", "pa"]
    );
    assert_eq!(
        sorted(
            "Observation",
            vec![by("value-quantity", IndexTable::Quantity, false)]
        )
        .await,
        ["o1", "o3", "o2", "o4"]
    );
    assert_eq!(
        sorted(
            "Observation",
            vec![by("value-quantity", IndexTable::Quantity, true)]
        )
        .await,
        ["o2", "o3", "o1", "o4"]
    );
    // Ties on code (o1, o3, o4 share 8867-4) fall to the next key, then the id.
    assert_eq!(
        sorted(
            "Observation",
            vec![
                by("code", IndexTable::Token, true),
                by("date", IndexTable::Date, false)
            ]
        )
        .await,
        ["o3", "o1", "o4", "o2"]
    );
    assert_eq!(
        sorted(
            "Observation",
            vec![
                by("code", IndexTable::Token, false),
                SortKey {
                    field: SortField::Id,
                    descending: true
                }
            ]
        )
        .await,
        ["o2", "o4", "o3", "o1"]
    );
    // Across types, ties order by type then id.
    assert_eq!(
        sorted("", vec![by("name", IndexTable::String, false)]).await,
        [
            "pa", "pb", "pc", "o1", "o2", "o3", "o4", "vs1", "vs2", "vs3"
        ]
    );
}

async fn index_replacement_and_marks(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let replacement = IndexEntries {
        strings: vec![string("name", "Jones")],
        ..Default::default()
    };
    let mut tx = store
        .begin(oxifhir_store::Isolation::Serializable)
        .await
        .expect("begin");
    assert!(
        !tx.replace_index("Patient", "pb", 2, replacement.clone())
            .await
            .expect("stale version")
    );
    assert!(
        !tx.replace_index("Patient", "pd", 2, replacement.clone())
            .await
            .expect("deleted")
    );
    assert!(
        !tx.replace_index("Patient", "zz", 1, replacement.clone())
            .await
            .expect("unknown")
    );
    assert!(
        tx.replace_index("Patient", "pb", 1, replacement)
            .await
            .expect("replace")
    );
    tx.commit().await.expect("commit");
    let patients = |c: Vec<Condition>| ids(store, query("Patient", c));
    assert_eq!(
        patients(vec![matching("name", starts("jon"))]).await,
        ["pb"]
    );
    assert_eq!(
        patients(vec![matching("name", starts("smi"))]).await,
        ["pc"]
    );
    assert!(
        patients(vec![matching("gender", code(TokenSystem::Any, "male"))])
            .await
            .is_empty()
    );
    let version = store
        .read("Patient", "pb")
        .await
        .expect("read")
        .expect("pb");
    assert_eq!(version.version_id, 1, "no new version");
    assert_eq!(h.index_counts("Patient", "pb").await, [1, 0, 0, 0, 0, 0, 0]);

    assert!(store.indexed_params().await.expect("none").is_empty());
    let mark = |url: &str, fingerprint: &str| IndexedParam {
        url: url.into(),
        fingerprint: fingerprint.into(),
    };
    store
        .mark_param_indexed(&mark("http://x/b", "1"))
        .await
        .expect("mark");
    store
        .mark_param_indexed(&mark("http://x/a", "1"))
        .await
        .expect("mark");
    store
        .mark_param_indexed(&mark("http://x/b", "2"))
        .await
        .expect("remark");
    assert_eq!(
        store.indexed_params().await.expect("marks"),
        [mark("http://x/a", "1"), mark("http://x/b", "2")]
    );
    store
        .mark_param_indexed(&mark("http://x/a", ""))
        .await
        .expect("unmark");
    let reopened = h.reopen().await;
    assert_eq!(
        reopened.indexed_params().await.expect("after restart"),
        [mark("http://x/b", "2")]
    );
}

store_tests!(
    strings_and_tokens,
    dates,
    numbers_and_quantities,
    references_chains_and_uris,
    sorting_by_parameters,
    index_replacement_and_marks,
);
