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

/// One index table's part of [`composite_keys_code_first!`]; `$pos` is the dialect's
/// function for the position of a text in another (`instr`, `strpos`).
macro_rules! composite_keys_of {
    ($pos:literal, $table:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE ",
            $pos,
            "(param, '$') > 0
                AND substr(param, ",
            $pos,
            "(param, '$'), 3) = '$*|';
            UPDATE ",
            $table,
            " SET param = substr(param, 1, ",
            $pos,
            "(param, '$'))
                || replace(replace(substr(param, ",
            $pos,
            "(param, '$') + 1
                    + ",
            $pos,
            "(substr(param, ",
            $pos,
            "(param, '$') + 1), '|')), '\\', '\\\\'),
                    '|', '\\|')
                || '|'
                || substr(param, ",
            $pos,
            "(param, '$') + 1,
                    ",
            $pos,
            "(substr(param, ",
            $pos,
            "(param, '$') + 1), '|') - 1)
            WHERE ",
            $pos,
            "(param, '$') > 0
                AND ",
            $pos,
            "(substr(param, ",
            $pos,
            "(param, '$') + 1), '|') > 0;
            "
        )
    };
}

/// The migration that keys composite entries code first
/// (`oxifhir_model::index::composite::key`), once per value: the `{param}$*|{code}` rows,
/// which repeated every value for searches naming no system, go (such a search now reads the
/// names that start with `{param}${code}|`), and `{param}${system}|{code}` becomes
/// `{param}${code}|{system}`, with `\` and `|` of the code escaped by `\`. Only composites
/// have a `$` in their parameter name.
macro_rules! composite_keys_code_first {
    ($pos:literal) => {
        concat!(
            composite_keys_of!($pos, "idx_string"),
            composite_keys_of!($pos, "idx_token"),
            composite_keys_of!($pos, "idx_reference"),
            composite_keys_of!($pos, "idx_date"),
            composite_keys_of!($pos, "idx_number"),
            composite_keys_of!($pos, "idx_quantity"),
            composite_keys_of!($pos, "idx_uri"),
        )
    };
}

/// [`composite_keys_code_first!`] for SQLite (its migration 9).
pub(crate) const COMPOSITE_KEYS_CODE_FIRST_SQLITE: &str = composite_keys_code_first!("instr");

/// [`composite_keys_code_first!`] for PostgreSQL (its migration 8), after every `param`
/// column compares bytewise (`COLLATE "C"`), as a search for the names that start with a
/// text needs.
pub(crate) const COMPOSITE_KEYS_CODE_FIRST_POSTGRES: &str = concat!(
    r#"
    ALTER TABLE idx_string ALTER COLUMN param TYPE TEXT COLLATE "C";
    ALTER TABLE idx_token ALTER COLUMN param TYPE TEXT COLLATE "C";
    ALTER TABLE idx_reference ALTER COLUMN param TYPE TEXT COLLATE "C";
    ALTER TABLE idx_date ALTER COLUMN param TYPE TEXT COLLATE "C";
    ALTER TABLE idx_number ALTER COLUMN param TYPE TEXT COLLATE "C";
    ALTER TABLE idx_quantity ALTER COLUMN param TYPE TEXT COLLATE "C";
    ALTER TABLE idx_uri ALTER COLUMN param TYPE TEXT COLLATE "C";
    "#,
    composite_keys_code_first!("strpos")
);

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
