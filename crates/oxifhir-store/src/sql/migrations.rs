//! Schema migrations whose SQL is the same for both backends (each backend's list in
//! `sqlite/schema.rs` and `postgres/schema.rs` names them in its place).

/// Migration 6: `Observation`'s `combo-*` parameters are unions of two others each
/// (`combo-code` is `code` and `component-code`), searched through their parts' entries
/// (`oxifhir_model::search_param::union_parts`) and no longer indexed themselves: their rows
/// go. (`LIKE` is case-insensitive in SQLite; no other parameter differs from these by case.)
pub(crate) const UNION_PARAMETER_ROWS: &str = "
    DELETE FROM idx_token WHERE resource_type = 'Observation'
        AND (param IN ('combo-code', 'combo-data-absent-reason', 'combo-value-concept')
            OR param LIKE 'combo-code-value-concept$%');
    DELETE FROM idx_quantity WHERE resource_type = 'Observation'
        AND (param = 'combo-value-quantity' OR param LIKE 'combo-code-value-quantity$%');
";

/// Migration 7: `idx_reference_url` leaves out the references written as the `Type/id` of
/// their target, which no URL test matches ([`super::reference_url_indexed`]): in the
/// synthetic data set, every one of them.
pub(crate) const PARTIAL_REFERENCE_URL_INDEX: &str = "
    DROP INDEX idx_reference_url;
    CREATE INDEX idx_reference_url
        ON idx_reference (resource_type, param, url, id, target_type, target_id)
        WHERE url IS DISTINCT FROM (target_type || '/' || target_id);
";

#[cfg(test)]
mod tests {
    use super::PARTIAL_REFERENCE_URL_INDEX;

    /// A URL test names the partial index's condition word for word: that is how either
    /// database sees that the index covers it.
    #[test]
    fn url_tests_name_the_partial_index_condition() {
        let condition = super::super::reference_url_indexed("e").replace("e.", "");
        assert!(PARTIAL_REFERENCE_URL_INDEX.contains(&condition));
    }
}
