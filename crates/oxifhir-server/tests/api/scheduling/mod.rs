//! Appointment scheduling: `$find`, `$book`, `$hold`, `$confirm` and `$cancel`
//! (medplum-reference.md §6, seed 002), every rule and error text, DST, far time zones,
//! several Schedules, and concurrency.

mod book;
mod cancel;
mod concurrency;
mod find;

use serde_json::{Value, json};

use crate::support::{Reply, TestServer, outcome_text};

pub const PARAMS_URL: &str = "https://medplum.com/fhir/StructureDefinition/SchedulingParameters";
pub const SERVICE_REF_URL: &str = "https://medplum.com/fhir/service-type-reference";
pub const TZ_URL: &str = "http://hl7.org/fhir/StructureDefinition/timezone";

/// A `valueDuration` sub-extension in minutes.
pub fn minutes(name: &str, value: i64) -> Value {
    json!({"url": name, "valueDuration": {"value": value, "unit": "min",
        "system": "http://unitsofmeasure.org", "code": "min"}})
}

/// A `valueCode` sub-extension.
pub fn code(name: &str, value: &str) -> Value {
    json!({"url": name, "valueCode": value})
}

/// The `availability` sub-extension: one `availableTime` on `days` from `start` to `end`.
pub fn availability(days: &[&str], start: &str, end: &str) -> Value {
    let mut subs: Vec<Value> = days
        .iter()
        .map(|d| json!({"url": "daysOfWeek", "valueCode": d}))
        .collect();
    subs.push(json!({"url": "availableStartTime", "valueTime": start}));
    subs.push(json!({"url": "availableEndTime", "valueTime": end}));
    json!({"url": "availability", "extension": [{"url": "availableTime", "extension": subs}]})
}

pub const EVERY_DAY: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A SchedulingParameters extension for service `hs` with these sub-extensions.
pub fn params_for(service: &str, subs: Vec<Value>) -> Value {
    let mut all = vec![
        json!({"url": "service", "valueReference": {"reference": format!("HealthcareService/{service}")}}),
    ];
    all.extend(subs);
    json!({"url": PARAMS_URL, "extension": all})
}

/// What a fixture is made of.
pub struct Setup {
    /// Sub-extensions of the HealthcareService's SchedulingParameters (none: no extension).
    pub service_params: Vec<Value>,
    /// Sub-extensions of each Schedule's SchedulingParameters for the service.
    pub schedule_params: Vec<Value>,
    /// The actor's time zone (`None`: no extension).
    pub zone: Option<&'static str>,
    /// `Schedule.planningHorizon`.
    pub horizon: Option<Value>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            service_params: vec![minutes("duration", 30)],
            schedule_params: vec![],
            zone: Some("Etc/UTC"),
            horizon: None,
        }
    }
}

/// Stores `HealthcareService/hs` (type `consult`) and, for each name, `Practitioner/dr-<name>`
/// and `Schedule/<name>` offering `hs`.
pub async fn setup(s: &TestServer, setup: &Setup, schedules: &[&str]) {
    let mut service = json!({"resourceType": "HealthcareService", "id": "hs",
        "type": [{"coding": [{"system": "http://example.org/services", "code": "consult"}]}]});
    if !setup.service_params.is_empty() {
        service["extension"] = json!([{"url": PARAMS_URL, "extension": setup.service_params}]);
    }
    put(s, &service).await;
    for name in schedules {
        let mut practitioner = json!({"resourceType": "Practitioner", "id": format!("dr-{name}")});
        if let Some(zone) = setup.zone {
            practitioner["extension"] = json!([{"url": TZ_URL, "valueCode": zone}]);
        }
        put(s, &practitioner).await;
        let mut schedule = json!({"resourceType": "Schedule", "id": name,
            "actor": [{"reference": format!("Practitioner/dr-{name}")}],
            "serviceType": [{"extension": [{"url": SERVICE_REF_URL,
                "valueReference": {"reference": "HealthcareService/hs"}}]}]});
        if !setup.schedule_params.is_empty() {
            schedule["extension"] = json!([params_for("hs", setup.schedule_params.clone())]);
        }
        if let Some(h) = &setup.horizon {
            schedule["planningHorizon"] = h.clone();
        }
        put(s, &schedule).await;
    }
}

/// `PUT` a resource at its id (panics unless 2xx).
pub async fn put(s: &TestServer, body: &Value) -> Value {
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = s.put(&path, body).await;
    assert!(r.status < 300, "PUT {path}: {}", r.text());
    r.json()
}

/// A stored Slot on `schedule`.
pub async fn slot(s: &TestServer, schedule: &str, status: &str, start: &str, end: &str) -> Value {
    s.create(
        &json!({"resourceType": "Slot", "schedule": {"reference": format!("Schedule/{schedule}")},
        "status": status, "start": start, "end": end}),
    )
    .await
}

/// `GET Appointment/$find` with `hs`, these Schedules and extra query parameters.
pub async fn find(
    s: &TestServer,
    schedules: &[&str],
    start: &str,
    end: &str,
    extra: &str,
) -> Reply {
    let mut q = format!(
        "start={}&end={}&service-type-reference=HealthcareService/hs",
        enc(start),
        enc(end)
    );
    for sch in schedules {
        q.push_str(&format!("&schedule=Schedule/{sch}"));
    }
    s.get(&format!("Appointment/$find?{q}{extra}")).await
}

/// Percent-encodes a time for a query (`+` offsets).
pub fn enc(v: &str) -> String {
    v.replace('+', "%2B").replace(':', "%3A")
}

/// The proposals of a successful `$find`.
pub async fn proposals(s: &TestServer, schedules: &[&str], start: &str, end: &str) -> Vec<Value> {
    let r = find(s, schedules, start, end, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    entries(&r.json())
}

/// The resources of a Bundle's entries.
pub fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default()
}

/// The `start` of each proposal.
pub fn starts(proposals: &[Value]) -> Vec<String> {
    proposals
        .iter()
        .map(|p| p["start"].as_str().unwrap().to_string())
        .collect()
}

/// `POST Appointment/$<op>` with the appointment in a Parameters body.
pub async fn book(s: &TestServer, op: &str, appointment: &Value) -> Reply {
    s.post(
        &format!("Appointment/${op}"),
        &json!({"resourceType": "Parameters", "parameter": [{"name": "appointment", "resource": appointment}]}),
    )
    .await
}

/// Asserts a `400` with `text` (and, when given, the expressions).
pub fn assert_invalid(r: &Reply, text: &str, expressions: Option<&[&str]>) {
    assert_eq!(r.status, 400, "{text}: {}", r.text());
    assert_eq!(outcome_text(r), text);
    let issue = &r.json()["issue"][0];
    assert_eq!(issue["code"], "invalid", "{}", r.text());
    if let Some(expected) = expressions {
        let got: Vec<&str> = issue["expression"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(got, expected, "{text}");
    }
}

/// The live Slots of a Schedule (`Slot?schedule=`), as `(status, start)`.
pub async fn live_slots(s: &TestServer, schedule: &str) -> Vec<(String, String)> {
    let r = s
        .get(&format!("Slot?schedule=Schedule/{schedule}&_count=1000"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut out: Vec<(String, String)> = entries(&r.json())
        .iter()
        .map(|x| {
            (
                x["status"].as_str().unwrap_or("").to_string(),
                x["start"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}
