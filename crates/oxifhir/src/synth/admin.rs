//! The shared pools of `oxifhir synth`: Organizations, Practitioners (each working for one
//! Organization), and the Groups of patients written at the end (everyone, a practitioner's
//! panel, the diabetic, the elderly).

use serde_json::{Value, json};

use super::output::{Batch, Kind};
use super::patient::{PatientFacts, human_name};
use super::rng::{Rng, Stream};
use super::{Plan, organization_ref, patient_ref, vocab};

/// The largest Group written: bigger cohorts keep their first members.
pub const GROUP_CAP: usize = 10_000;

/// The system of Organization and Group identifiers.
const IDENTIFIER_SYSTEM: &str = "https://synth.oxifhir.example/fhir/sid";

/// Writes the Organizations.
pub fn organizations(plan: &Plan, out: &mut Batch) -> anyhow::Result<()> {
    for index in 1..=plan.organizations {
        let mut rng = Rng::new(plan.seed, Stream::Organization, u64::from(index));
        let locale = vocab::locale(&mut rng);
        let (line, city, state, postal) = vocab::address(&mut rng, locale);
        let organization = json!({
            "resourceType": "Organization",
            "id": format!("org-{index:06}"),
            "identifier": [{
                "system": format!("{IDENTIFIER_SYSTEM}/organization"),
                "value": format!("ORG{index:06}"),
            }],
            "active": true,
            "type": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                "code": "prov",
                "display": "Healthcare Provider",
            }]}],
            "name": vocab::organization_name(&mut rng, locale),
            "telecom": [{"system": "phone", "value": vocab::phone(&mut rng, locale), "use": "work"}],
            "address": [{
                "use": "work",
                "line": [line],
                "city": city,
                "state": state,
                "postalCode": postal,
                "country": locale.country,
            }],
        });
        out.emit(Kind::Organization, &organization)?;
    }
    Ok(())
}

/// Writes the Practitioners.
pub fn practitioners(plan: &Plan, out: &mut Batch) -> anyhow::Result<()> {
    for index in 1..=plan.practitioners {
        let mut rng = Rng::new(plan.seed, Stream::Practitioner, u64::from(index));
        let locale = vocab::locale(&mut rng);
        let female = rng.chance(520);
        let (given, family) = human_name(&mut rng, locale, female);
        // NPIs are ten digits starting with 1; 7919 is prime, so these are distinct.
        let npi = 1_000_000_000 + (u64::from(index) * 7919 + plan.seed) % 1_000_000_000;
        let email = format!(
            "{}.{}@org{:06}.example.org",
            vocab::ascii_slug(given[0]),
            vocab::ascii_slug(&family),
            plan.organization_of(index),
        );
        let practitioner = json!({
            "resourceType": "Practitioner",
            "id": format!("prac-{index:06}"),
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi.to_string()}],
            "active": true,
            "name": [{"use": "official", "family": family, "given": given, "prefix": ["Dr."]}],
            "telecom": [
                {"system": "phone", "value": vocab::phone(&mut rng, locale), "use": "work"},
                {"system": "email", "value": email, "use": "work"},
            ],
            "gender": if female { "female" } else { "male" },
            "qualification": [{"code": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0360|2.7",
                "code": "MD",
                "display": "Doctor of Medicine",
            }]}}],
        });
        out.emit(Kind::Practitioner, &practitioner)?;
    }
    Ok(())
}

/// The members of the cohort Groups, gathered while the patients are generated (at most
/// [`GROUP_CAP`] each, so memory stays bounded).
#[derive(Debug, Default)]
pub struct Cohorts {
    diabetic: Vec<u32>,
    elderly: Vec<u32>,
}

impl Cohorts {
    /// Records patient `index`.
    pub fn add(&mut self, index: u32, facts: &PatientFacts) {
        if facts.diabetic && self.diabetic.len() < GROUP_CAP {
            self.diabetic.push(index);
        }
        if facts.age >= 65 && self.elderly.len() < GROUP_CAP {
            self.elderly.push(index);
        }
    }
}

/// Writes the Groups: all patients (the first [`GROUP_CAP`]), the panel of the first
/// Practitioner, the patients with type 2 diabetes and those aged 65 or more.
pub fn groups(plan: &Plan, cohorts: &Cohorts, out: &mut Batch) -> anyhow::Result<()> {
    let everyone = 1..=plan.patients.min(GROUP_CAP as u32);
    let all_name = if plan.patients as usize <= GROUP_CAP {
        "All patients".to_owned()
    } else {
        format!("The first {GROUP_CAP} patients")
    };
    let panel = (1..=plan.patients)
        .step_by(plan.practitioners as usize)
        .take(GROUP_CAP);
    let groups: [(&str, String, Vec<u32>); 4] = [
        ("grp-all", all_name, everyone.collect()),
        (
            "grp-panel-prac-000001",
            "Patients of practitioner prac-000001".to_owned(),
            panel.collect(),
        ),
        (
            "grp-diabetes",
            "Patients with type 2 diabetes".to_owned(),
            cohorts.diabetic.clone(),
        ),
        (
            "grp-65-and-over",
            "Patients aged 65 and over".to_owned(),
            cohorts.elderly.clone(),
        ),
    ];
    for (id, name, members) in groups {
        out.emit(Kind::Group, &group(id, &name, &members))?;
    }
    Ok(())
}

/// A Group of patients (type `person`, `actual`), without `member` when it is empty (FHIR
/// JSON has no empty arrays).
fn group(id: &str, name: &str, members: &[u32]) -> Value {
    let mut group = json!({
        "resourceType": "Group",
        "id": id,
        "identifier": [{"system": format!("{IDENTIFIER_SYSTEM}/group"), "value": id}],
        "active": true,
        "type": "person",
        "actual": true,
        "name": name,
        "quantity": members.len(),
        "managingEntity": {"reference": organization_ref(1)},
    });
    if let (false, Value::Object(map)) = (members.is_empty(), &mut group) {
        let entries: Vec<Value> = members
            .iter()
            .map(|&index| json!({"entity": {"reference": patient_ref(index)}}))
            .collect();
        map.insert("member".into(), entries.into());
    }
    group
}
