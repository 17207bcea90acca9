//! Slices: runs of one type's ids, each exported part after part into files of its own, so
//! that several keyset scans of one large type run side by side (see [`super::job`]).

use oxifhir_jobs::{JobContext, JobError};
use serde::{Deserialize, Serialize};

use super::job::scan_of;
use super::manifest::ExportFile;
use super::params::ExportRequest;
use crate::config::ExportConfig;

/// A run of one type's ids, exported part after part into files of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Slice {
    /// Index into the request's types.
    pub(super) type_index: usize,
    /// The slice's number among its type's (from 1); `None` for a type exported whole.
    pub(super) number: Option<u32>,
    /// About how many resources the slice holds, when planned.
    pub(super) rows: u64,
    /// The last id of the finished parts, or where the slice starts (exclusive).
    pub(super) after_id: Option<String>,
    /// The slice's last id (inclusive); `None` runs to the type's last.
    pub(super) up_to: Option<String>,
    /// The number of the next part.
    pub(super) part: u32,
    pub(super) done: bool,
    pub(super) files: Vec<ExportFile>,
}

impl Slice {
    /// The name of this slice's next output (or, with `deleted`, deletion) file.
    pub(super) fn file_name(&self, resource_type: &str, deleted: bool) -> String {
        let kind = if deleted { "-deleted" } else { "" };
        match self.number {
            None => format!("{resource_type}{kind}-{}.ndjson", self.part),
            Some(n) => format!("{resource_type}{kind}-{n}-{}.ndjson", self.part),
        }
    }
}

/// The count (for progress) and the slices of the request's type `type_index`.
pub(super) async fn plan(
    ctx: &JobContext,
    settings: &ExportConfig,
    export: &ExportRequest,
    type_index: usize,
    cut: i64,
    patients: &Option<Vec<String>>,
) -> Result<(u64, Vec<Slice>), JobError> {
    let resource_type = &export.types[type_index];
    let scan = scan_of(export, resource_type, cut, patients, None, 1);
    let count = ctx.store().export_count(&scan).await?;
    let slices = cut_into_slices(ctx, settings, type_index, resource_type, count).await?;
    Ok((count, slices))
}

/// The slices of a type of `count` resources: one per file's worth when slices run side
/// by side, else the whole type.
async fn cut_into_slices(
    ctx: &JobContext,
    settings: &ExportConfig,
    type_index: usize,
    resource_type: &str,
    count: u64,
) -> Result<Vec<Slice>, JobError> {
    let wanted = usize::try_from(count.div_ceil(settings.file_resources.max(1))).unwrap_or(1);
    let whole = Slice {
        type_index,
        number: None,
        rows: count,
        after_id: None,
        up_to: None,
        part: 1,
        done: false,
        files: Vec::new(),
    };
    if settings.parallel <= 1 || wanted <= 1 {
        return Ok(vec![whole]);
    }
    // About a hundred sampled ids a slice place its bounds within a few percent.
    let every = count / (wanted as u64 * 100);
    let sample = ctx
        .store()
        .export_sample(resource_type, every.max(1))
        .await?;
    let points = oxifhir_store::export::split_points(sample, wanted);
    let mut starts = vec![None];
    starts.extend(points.iter().cloned().map(Some));
    let mut ends: Vec<Option<String>> = points.into_iter().map(Some).collect();
    ends.push(None);
    Ok(starts
        .into_iter()
        .zip(ends)
        .zip(1..)
        .map(|((after_id, up_to), number)| Slice {
            number: Some(number),
            rows: count / wanted as u64,
            after_id,
            up_to,
            ..whole.clone()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_slice_only_when_the_type_is_cut() {
        let mut slice = Slice {
            type_index: 0,
            number: None,
            rows: 10,
            after_id: None,
            up_to: None,
            part: 2,
            done: false,
            files: Vec::new(),
        };
        assert_eq!(slice.file_name("Patient", false), "Patient-2.ndjson");
        assert_eq!(slice.file_name("Patient", true), "Patient-deleted-2.ndjson");
        slice.number = Some(3);
        assert_eq!(slice.file_name("Patient", false), "Patient-3-2.ndjson");
        assert_eq!(
            slice.file_name("Patient", true),
            "Patient-deleted-3-2.ndjson"
        );
        assert!(super::super::files::is_file_name(
            &slice.file_name("Patient", true)
        ));
    }
}
