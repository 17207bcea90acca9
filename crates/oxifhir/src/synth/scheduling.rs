//! Scheduling data of `oxifhir synth`: per Practitioner a Schedule covering the three weeks
//! before the epoch, 30-minute Slots every weekday morning, and for each busy Slot a booked
//! Appointment with the same start and end, a patient from the practitioner's panel and the
//! practitioner. A Slot and its Appointment share their suffix (`slot-000001-0007`,
//! `appt-000001-0007`).

use super::json::Object;
use super::output::{Batch, Kind};
use super::rng::{DAY, Rng, Stream, date_time, weekday};
use super::{Plan, patient_ref, practitioner_ref};

/// The planning horizon: this many days before the epoch.
const HORIZON_DAYS: i64 = 21;
/// Slots start at 09:00 UTC, every 30 minutes, this many per weekday.
const SLOTS_PER_DAY: i64 = 6;
const FIRST_SLOT_SECOND: i64 = 9 * 3600;
const SLOT_SECONDS: i64 = 30 * 60;
/// The chance (‰) that a Slot is busy (and so has an Appointment).
const BUSY_PER_MILLE: u32 = 400;

/// Writes the Schedule of Practitioner `index`, its Slots and their Appointments.
pub fn schedule(plan: &Plan, index: u32, out: &mut Batch) {
    let first_day = plan.epoch_day - HORIZON_DAYS;
    let mut rng = Rng::new(plan.seed, Stream::Schedule, u64::from(index));
    let practitioner = practitioner_ref(index);
    let schedule_id = format!("sch-{index:06}");
    out.write(Kind::Schedule, |o| {
        o.string("id", &schedule_id).boolean("active", true);
        service_type(o);
        o.array("actor", |a| {
            a.object(|r| {
                r.string("reference", &practitioner);
            });
        })
        .object("planningHorizon", |p| {
            p.string("start", &date_time(first_day * DAY))
                .string("end", &date_time(plan.epoch()));
        })
        .string("comment", "Weekday mornings, 30-minute consultations");
    });
    let schedule_ref = format!("Schedule/{schedule_id}");

    let mut number = 0;
    for day in first_day..plan.epoch_day {
        if weekday(day) >= 5 {
            continue;
        }
        for slot_of_day in 0..SLOTS_PER_DAY {
            number += 1;
            let start = date_time(day * DAY + FIRST_SLOT_SECOND + slot_of_day * SLOT_SECONDS);
            let end = date_time(day * DAY + FIRST_SLOT_SECOND + (slot_of_day + 1) * SLOT_SECONDS);
            let busy = rng.chance(BUSY_PER_MILLE);
            let slot_id = format!("slot-{index:06}-{number:04}");
            out.write(Kind::Slot, |o| {
                o.string("id", &slot_id);
                service_type(o);
                o.reference("schedule", &schedule_ref)
                    .string("status", if busy { "busy" } else { "free" })
                    .string("start", &start)
                    .string("end", &end);
            });
            if !busy {
                continue;
            }
            let patient = patient_ref(panel_patient(plan, index, &mut rng));
            let created = day * DAY - rng.range(1, 30) * DAY + rng.range(8 * 3600, 18 * 3600);
            let (code, display, description) = *rng.pick(APPOINTMENT_TYPES);
            out.write(Kind::Appointment, |o| {
                o.string("id", &format!("appt-{index:06}-{number:04}"))
                    .string("status", "booked");
                service_type(o);
                o.object("appointmentType", |t| {
                    t.array("coding", |a| {
                        a.object(|c| {
                            c.coding(APPOINTMENT_TYPE, code, display);
                        });
                    });
                })
                .string("description", description)
                .string("start", &start)
                .string("end", &end)
                .integer("minutesDuration", SLOT_SECONDS / 60)
                .array("slot", |a| {
                    a.object(|r| {
                        r.string("reference", &format!("Slot/{slot_id}"));
                    });
                })
                .string("created", &date_time(created))
                .array("participant", |a| {
                    for actor in [&patient, &practitioner] {
                        a.object(|p| {
                            p.reference("actor", actor)
                                .string("required", "required")
                                .string("status", "accepted");
                        });
                    }
                });
            });
        }
    }
}

/// `"serviceType": [General Practice]`.
fn service_type(o: &mut Object) {
    o.categories("serviceType", SERVICE_TYPE, "124", "General Practice");
}

/// The system of `serviceType`.
const SERVICE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/service-type";
/// The system of `Appointment.appointmentType`, and the types drawn with a description.
const APPOINTMENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
const APPOINTMENT_TYPES: &[(&str, &str, &str)] = &[
    (
        "ROUTINE",
        "Routine appointment - default if not valued",
        "Routine check-up",
    ),
    (
        "FOLLOWUP",
        "A follow up visit from a previous appointment",
        "Follow-up visit",
    ),
    (
        "CHECKUP",
        "A routine check-up, such as an annual physical",
        "Annual physical",
    ),
];

/// A patient of practitioner `practitioner`'s panel (patients are assigned round-robin), or
/// any patient when the panel is empty (fewer patients than practitioners).
fn panel_patient(plan: &Plan, practitioner: u32, rng: &mut Rng) -> u32 {
    if practitioner > plan.patients {
        return rng.range(1, i64::from(plan.patients)) as u32;
    }
    let panel_size = (plan.patients - practitioner) / plan.practitioners + 1;
    let member = rng.below(u64::from(panel_size)) as u32;
    practitioner + member * plan.practitioners
}
