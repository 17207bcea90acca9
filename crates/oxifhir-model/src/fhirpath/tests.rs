//! Evaluation tests: an expression over a resource against the JSON values it yields.

use serde_json::{Value, json};

use super::*;

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"lastUpdated": "2024-01-02T03:04:05.678Z", "tag": [{"code": "t"}]},
        "extension": [
            {"url": "http://example.org/eye", "valueCode": "blue"},
            {"url": "http://example.org/height", "valueQuantity": {"value": 1.80, "unit": "m"}}
        ],
        "name": [
            {"use": "official", "family": "Müller", "given": ["Anna", "Maria"]},
            {"use": "nickname", "given": ["Annie"]}
        ],
        "telecom": [
            {"system": "phone", "value": "555"},
            {"system": "email", "value": "a@example.org"}
        ],
        "deceasedBoolean": false,
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "Local"}],
        "managingOrganization": {"reference": "#o1"},
        "generalPractitioner": [
            {"reference": "Practitioner/d1"},
            {"reference": "http://example.org/fhir/Organization/o2/_history/3"}
        ]
    })
}

fn check(resource: &Value, expression: &str, expected: Value) {
    let parsed = Expression::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    let got: Vec<Value> = parsed
        .evaluate(resource)
        .iter()
        .map(|i| i.value().clone())
        .collect();
    assert_eq!(Value::Array(got), expected, "{expression}");
}

#[test]
fn paths_and_unions() {
    let p = patient();
    check(&p, "Patient.id", json!(["p1"]));
    check(&p, "Resource.id", json!(["p1"]));
    check(&p, "DomainResource.id", json!(["p1"]));
    check(&p, "Observation.id", json!([]));
    check(&p, "id", json!(["p1"]));
    check(&p, "Patient.name.given", json!(["Anna", "Maria", "Annie"]));
    check(
        &p,
        "Patient.name.family | Patient.name.family",
        json!(["Müller"]),
    );
    check(&p, "Patient.name.given[1]", json!(["Maria"]));
    check(&p, "Patient.name.first().given.last()", json!(["Maria"]));
    check(&p, "Patient.nothing.here", json!([]));
    check(&p, "%resource.meta.tag.code", json!(["t"]));
    check(&p, "Patient.name.select(family)", json!(["Müller"]));
}

#[test]
fn where_and_logic() {
    let p = patient();
    check(
        &p,
        "Patient.telecom.where(system='phone').value",
        json!(["555"]),
    );
    check(
        &p,
        "Patient.telecom.where(system!='phone').value",
        json!(["a@example.org"]),
    );
    check(
        &p,
        "Patient.telecom.where(system='phone' or system='email').value",
        json!(["555", "a@example.org"]),
    );
    check(
        &p,
        "Patient.telecom.where(system='phone' and value='1').value",
        json!([]),
    );
    check(
        &p,
        "Patient.name.where(given.exists() and family.empty()).given",
        json!(["Annie"]),
    );
    check(
        &p,
        "Patient.name.where(family.exists().not()).use",
        json!(["nickname"]),
    );
    check(&p, "Patient.name.exists(use = 'official')", json!([true]));
    check(&p, "Patient.name.all(given.exists())", json!([true]));
    check(&p, "Patient.name.use ~ 'OFFICIAL'", json!([false]));
    check(&p, "Patient.name.first().use ~ 'OFFICIAL'", json!([true]));
    check(&p, "'phone' in Patient.telecom.system", json!([true]));
    check(&p, "Patient.telecom.system contains 'fax'", json!([false]));
    check(&p, "Patient.name.given.first() < 'B'", json!([true]));
    check(&p, "true implies false", json!([false]));
    check(&p, "{} implies true", json!([true]));
    check(&p, "true xor false", json!([true]));
    check(
        &p,
        "Patient.name.where(true)",
        json!([p["name"][0], p["name"][1]]),
    );
}

#[test]
fn choice_elements_and_types() {
    let p = patient();
    check(
        &p,
        "Patient.deceased.exists() and Patient.deceased != false",
        json!([false]),
    );
    let mut dead = p.clone();
    dead.as_object_mut().unwrap().remove("deceasedBoolean");
    dead["deceasedDateTime"] = json!("2020-01-01");
    check(
        &dead,
        "Patient.deceased.exists() and Patient.deceased != false",
        json!([true]),
    );
    check(
        &dead,
        "(Patient.deceased as dateTime)",
        json!(["2020-01-01"]),
    );
    check(&dead, "Patient.deceased.as(boolean)", json!([]));
    check(
        &dead,
        "Patient.deceased.ofType(DateTime)",
        json!(["2020-01-01"]),
    );
    check(&dead, "Patient.deceased is dateTime", json!([true]));
    check(&dead, "Patient.deceased.is(boolean)", json!([false]));
    check(&p, "Patient.birthDate.exists()", json!([false]));
    check(&p, "Patient.name.first() is HumanName", json!([true]));
    check(&p, "Patient.contained is Resource", json!([true]));
    check(
        &p,
        "Patient.contained.ofType(Organization).name",
        json!(["Local"]),
    );
    check(&p, "Patient.contained.ofType(Patient)", json!([]));
    let obs = json!({
        "resourceType": "Observation",
        "valueQuantity": {"value": 1.50, "unit": "mmol/L"},
        "component": [{"valueString": "x"}, {"valueQuantity": {"value": 2}}]
    });
    check(&obs, "(Observation.value as Quantity).value", json!([1.50]));
    check(&obs, "(Observation.value as string)", json!([]));
    check(
        &obs,
        "Observation.value.ofType(FHIR.Quantity).unit",
        json!(["mmol/L"]),
    );
    check(
        &obs,
        "Observation.component.value as Quantity",
        json!([{"value": 2}]),
    );
    check(&obs, "Observation.component.value.as(string)", json!(["x"]));
}

#[test]
fn extensions_and_resolve() {
    let p = patient();
    check(
        &p,
        "Patient.extension('http://example.org/eye').value",
        json!(["blue"]),
    );
    check(
        &p,
        "Patient.extension.where(url='http://example.org/height').value.value",
        json!([1.80]),
    );
    check(&p, "Patient.extension('http://nope').value", json!([]));
    check(
        &p,
        "Patient.generalPractitioner.where(resolve() is Practitioner).reference",
        json!(["Practitioner/d1"]),
    );
    check(
        &p,
        "Patient.generalPractitioner.where(resolve() is Organization).reference",
        json!(["http://example.org/fhir/Organization/o2/_history/3"]),
    );
    check(
        &p,
        "Patient.managingOrganization.resolve().name",
        json!(["Local"]),
    );
    check(
        &p,
        "Patient.managingOrganization.where(resolve() is Organization)",
        json!([{"reference": "#o1"}]),
    );
    check(&p, "Patient.generalPractitioner.resolve().name", json!([]));
}

#[test]
fn bundles_index_their_entries() {
    let bundle = json!({
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Composition", "id": "c1", "status": "final"}},
            {"resource": {"resourceType": "Patient", "id": "p1"}}
        ]
    });
    check(&bundle, "Bundle.entry[0].resource.id", json!(["c1"]));
    check(
        &bundle,
        "Bundle.entry.resource.ofType(Patient).id",
        json!(["p1"]),
    );
    check(&bundle, "Bundle.entry[0].resource.status", json!(["final"]));
}

#[test]
fn unknown_types_navigate_plain_json() {
    let job = json!({"resourceType": "AsyncJob", "id": "j", "status": "accepted"});
    check(&job, "AsyncJob.status", json!(["accepted"]));
    check(&job, "Resource.id", json!(["j"]));
    check(&json!({"a": {"b": [1, 2]}}), "a.b", json!([1, 2]));
}

#[test]
fn references() {
    for (text, expected) in [
        ("Patient/1", Some(("Patient", "1"))),
        (
            "http://x.org/fhir/Patient/a-b.c",
            Some(("Patient", "a-b.c")),
        ),
        ("Patient/1/_history/2", Some(("Patient", "1"))),
        (
            "https://x/fhir/Observation/o/_history/9",
            Some(("Observation", "o")),
        ),
        ("Patient", None),
        ("Nonsense/1", None),
        ("Patient/bad_id", None),
        ("#p1", None),
        ("Patient?identifier=x", None),
        ("urn:uuid:0b7ee0c4-8f0b-4bb9-95fc-6f6f3e8e1d2a", None),
        ("_history/2", None),
    ] {
        assert_eq!(reference_target(text), expected, "{text}");
    }
}

#[test]
fn hostile_input_is_bounded() {
    let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(Expression::parse(&deep).is_err());
    let long = "a.".repeat(MAX_LENGTH);
    assert!(Expression::parse(&long).is_err());
    // A deeply nested resource is walked only as deep as the expression says.
    let mut nested = json!({"resourceType": "Patient"});
    for _ in 0..100 {
        nested = json!({"resourceType": "Patient", "contained": [nested]});
    }
    check(&nested, "Patient.contained.contained.id", json!([]));
}

/// The types `expr` can yield with input types `focus`, checking that every element it names
/// exists in the R4 type model and that every `as`/`ofType` can match something.
fn static_types(
    expr: &parser::Expr,
    focus: &[types::TypeId],
    root: types::TypeId,
) -> Result<Vec<types::TypeId>, String> {
    use parser::{BinOp, Expr, Func};
    use types::{Element, TYPES};
    let member = |bases: &[types::TypeId], name: &str| -> Result<Vec<types::TypeId>, String> {
        let mut out = Vec::new();
        for &t in bases {
            if TYPES.name(t) == "ResourceList" {
                continue;
            }
            match TYPES.element(t, name) {
                Some(Element::Single(x)) => out.push(*x),
                Some(Element::Choice(options)) => out.extend(options.iter().map(|(_, x)| *x)),
                None => return Err(format!("{} has no element {name}", TYPES.name(t))),
            }
        }
        Ok(out)
    };
    let cast = |bases: Vec<types::TypeId>, ty: &str| -> Result<Vec<types::TypeId>, String> {
        let any_resource = bases.iter().any(|t| TYPES.name(*t) == "ResourceList");
        let out: Vec<_> = bases.into_iter().filter(|t| TYPES.is_a(*t, ty)).collect();
        if out.is_empty() && !any_resource {
            return Err(format!("nothing can be a {ty}"));
        }
        Ok(out)
    };
    let each = |criteria: &Expr, bases: &[types::TypeId]| -> Result<(), String> {
        for &t in bases {
            static_types(criteria, &[t], root)?;
        }
        Ok(())
    };
    Ok(match expr {
        Expr::This => focus.to_vec(),
        Expr::Root => vec![root],
        Expr::Literal(_) | Expr::Empty => Vec::new(),
        Expr::Ident(name) if name.starts_with(|c: char| c.is_ascii_uppercase()) => focus
            .iter()
            .copied()
            .filter(|t| TYPES.is_a(*t, name))
            .collect(),
        Expr::Ident(name) => member(focus, name)?,
        Expr::Member(base, name) => member(&static_types(base, focus, root)?, name)?,
        Expr::Index(base, _) => static_types(base, focus, root)?,
        Expr::Call(base, func) => {
            let bases = static_types(base, focus, root)?;
            match func {
                Func::Where(c) => {
                    each(c, &bases)?;
                    bases
                }
                Func::All(c) | Func::Exists(Some(c)) => {
                    each(c, &bases)?;
                    Vec::new()
                }
                Func::Select(p) => {
                    let mut out = Vec::new();
                    for &t in &bases {
                        out.extend(static_types(p, &[t], root)?);
                    }
                    out
                }
                Func::Union(other) => {
                    let mut out = bases;
                    out.extend(static_types(other, focus, root)?);
                    out
                }
                Func::OfType(ty) => cast(bases, ty)?,
                Func::Extension(_) => TYPES.id("Extension").into_iter().collect(),
                Func::First | Func::Last | Func::Tail | Func::Single => bases,
                _ => Vec::new(),
            }
        }
        Expr::Binary(op, lhs, rhs) => {
            let (l, r) = (
                static_types(lhs, focus, root)?,
                static_types(rhs, focus, root)?,
            );
            match op {
                BinOp::Union => l.into_iter().chain(r).collect(),
                _ => Vec::new(),
            }
        }
        Expr::TypeOp { is, expr, ty } => {
            let bases = static_types(expr, focus, root)?;
            if *is { Vec::new() } else { cast(bases, ty)? }
        }
    })
}

#[test]
fn every_r4_expression_names_real_elements() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for t in crate::resource_type::all() {
        let root = types::TYPES.id(t).unwrap();
        for def in crate::search_param::for_type(t) {
            let Some(text) = def.expression_for(t) else {
                continue;
            };
            let parsed = Expression::parse(&text).unwrap();
            checked += 1;
            if let Err(e) = static_types(&parsed.expr, &[root], root) {
                failures.push(format!("{t} {}: {text}: {e}", def.code));
            }
        }
    }
    println!("{checked} expressions checked against the R4 types");
    for failure in &failures {
        println!("{failure}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
}
