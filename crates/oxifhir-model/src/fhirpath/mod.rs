//! The subset of FHIRPath that the R4 search parameters use, to extract index values from
//! resources: paths, `|`, `where`/`select`/`exists`/`all`, `=`/`!=`/`~`/comparisons,
//! `and`/`or`/`xor`/`implies`/`not()`, `is`/`as`/`ofType` (choice elements: `value as
//! Quantity` reads `valueQuantity`), `resolve()` (without a database: `resolve() is Patient`
//! looks at the reference's type), `extension('url')`, `first()`/`last()`/`[n]`, string,
//! number and boolean literals, `%resource` and `$this`.
//!
//! An [`Expression`] is parsed once and evaluated many times. Anything outside the subset
//! (arithmetic, date literals, unknown functions) fails to parse rather than evaluating
//! wrongly. Types come from the R4 JSON schema (`types.rs`), so navigation knows choice
//! elements and what each node is (`HumanName`, `CodeableConcept`, `dateTime`, ...).
//!
//! Evaluation is bounded: the parser limits nesting to [`MAX_DEPTH`], evaluation walks the
//! resource one step per syntax node, and `resolve()` never leaves the resource.

mod eval;
mod lexer;
mod parser;
mod types;

#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

use crate::{id, resource_type};

pub use parser::MAX_DEPTH;

/// The longest expression text accepted, in bytes.
pub const MAX_LENGTH: usize = 64 * 1024;

/// Why an expression could not be parsed (or is outside the supported subset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset})")]
pub struct ParseError {
    /// Byte offset in the expression text.
    pub offset: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            offset,
            message: message.into(),
        }
    }
}

/// A parsed FHIRPath expression, ready to be evaluated.
#[derive(Clone, PartialEq)]
pub struct Expression {
    text: String,
    expr: parser::Expr,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.text).finish()
    }
}

impl Expression {
    /// Parses `text`. Fails on syntax errors, on anything outside the supported subset, on
    /// text longer than [`MAX_LENGTH`] and on nesting deeper than [`MAX_DEPTH`].
    pub fn parse(text: &str) -> Result<Expression, ParseError> {
        if text.len() > MAX_LENGTH {
            return Err(ParseError::new(
                MAX_LENGTH,
                format!("expression longer than {MAX_LENGTH} bytes"),
            ));
        }
        Ok(Expression {
            text: text.to_string(),
            expr: parser::parse(text)?,
        })
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the expression with `resource` as its input (and `%resource`). The result
    /// borrows from both; it is empty when nothing matches. Never fails: a step that does not
    /// apply (a missing element, a comparison of different types) yields nothing.
    pub fn evaluate<'a>(&'a self, resource: &'a Value) -> Vec<Item<'a>> {
        self.evaluate_on(&Subject::new(resource))
    }

    /// [`Expression::evaluate`] on a resource prepared once for many expressions.
    pub fn evaluate_on<'a>(&'a self, subject: &Subject<'a>) -> Vec<Item<'a>> {
        let ctx = eval::Ctx {
            root: subject.root,
            types: &types::TYPES,
        };
        eval::eval(&ctx, &self.expr, &[subject.root])
    }

    /// Evaluates the expression with `item` (a node of `subject`) as its input, `%resource`
    /// still being the resource: how a composite parameter's components are read relative to
    /// each value of its own expression.
    pub fn evaluate_at<'a>(&'a self, subject: &Subject<'a>, item: Item<'a>) -> Vec<Item<'a>> {
        let ctx = eval::Ctx {
            root: subject.root,
            types: &types::TYPES,
        };
        eval::eval(&ctx, &self.expr, &[item])
    }
}

/// A resource ready for evaluating expressions over it: its type is looked up once.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    root: Item<'a>,
}

impl<'a> Subject<'a> {
    /// Prepares `resource`, typed by its `resourceType`.
    pub fn new(resource: &'a Value) -> Subject<'a> {
        Subject {
            root: Item {
                value: resource,
                ty: types::TYPES.of_resource(resource),
            },
        }
    }
}

/// One item of a result: a node of the resource (or a literal or computed boolean) and its
/// FHIR type when known.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    value: &'a Value,
    ty: Option<types::TypeId>,
}

impl<'a> Item<'a> {
    /// The JSON node. For a `resolve()` of a reference to another resource, `null`.
    pub fn value(&self) -> &'a Value {
        self.value
    }

    /// The FHIR type of the node as the R4 schema names it (`HumanName`, `dateTime`, `code`,
    /// `Patient`, `Patient_Contact` for a backbone element), or `None` when it is not known
    /// (literals, computed booleans, elements the schema does not define).
    pub fn type_name(&self) -> Option<&'static str> {
        self.ty.map(|t| types::TYPES.name(t))
    }
}

/// The resource type and id that a literal reference points to: `Patient/1`,
/// `http://example.org/fhir/Patient/1`, and either with `/_history/2` after it. `None` for a
/// reference whose last two segments are not a known type and a valid id, and for local
/// (`#x`), conditional (`Patient?x=y`) and `urn:` references.
pub fn reference_target(reference: &str) -> Option<(&str, &str)> {
    if reference.contains(['?', '#']) {
        return None;
    }
    let mut segments = reference.rsplit('/');
    let (mut id, mut resource_type) = (segments.next()?, segments.next()?);
    if resource_type == "_history" {
        id = segments.next()?;
        resource_type = segments.next()?;
    }
    (resource_type::is_known(resource_type) && id::is_valid(id)).then_some((resource_type, id))
}
