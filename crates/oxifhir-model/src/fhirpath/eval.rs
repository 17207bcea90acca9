//! Evaluates a syntax tree over resource JSON. Collections are vectors of [`Item`]s (a JSON
//! node and its FHIR type, when known) that borrow from the resource and the expression, so
//! nothing is copied. Recursion follows the tree, whose depth the parser bounds; the JSON is
//! only ever walked one step per tree node.

use std::collections::HashSet;

use serde_json::Value;

use super::Item;
use super::parser::{BinOp, Expr, Func};
use super::reference_target;
use super::types::{Element, TypeId, TypeTable, type_matches};

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);
/// What `resolve()` yields for a reference to another resource: no content, only a type.
static NOTHING: Value = Value::Null;

/// What every step of one evaluation shares.
pub(crate) struct Ctx<'a> {
    pub(crate) root: Item<'a>,
    pub(crate) types: &'static TypeTable,
}

fn boolean<'a>(b: bool) -> Vec<Item<'a>> {
    vec![Item {
        value: if b { &TRUE } else { &FALSE },
        ty: None,
    }]
}

fn maybe_boolean<'a>(b: Option<bool>) -> Vec<Item<'a>> {
    b.map(boolean).unwrap_or_default()
}

/// A collection as a boolean: empty is unknown, a single boolean is itself, any other single
/// item is true, several items are unknown.
fn truth(items: &[Item<'_>]) -> Option<bool> {
    match items {
        [item] => Some(item.value.as_bool().unwrap_or(true)),
        _ => None,
    }
}

/// The value of `expr` with input collection `focus`.
pub(crate) fn eval<'a>(ctx: &Ctx<'a>, expr: &'a Expr, focus: &[Item<'a>]) -> Vec<Item<'a>> {
    match expr {
        Expr::This => focus.to_vec(),
        Expr::Root => vec![ctx.root],
        Expr::Literal(value) => vec![Item { value, ty: None }],
        Expr::Empty => Vec::new(),
        Expr::Ident(name) if name.starts_with(|c: char| c.is_ascii_uppercase()) => focus
            .iter()
            .filter(|item| is_type(ctx, item, name))
            .copied()
            .collect(),
        Expr::Ident(name) => members(ctx, focus, name),
        Expr::Member(base, name) => members(ctx, &eval(ctx, base, focus), name),
        Expr::Index(base, index) => {
            let items = eval(ctx, base, focus);
            let index = eval(ctx, index, focus);
            match index.as_slice() {
                [i] => i
                    .value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| items.get(n).copied())
                    .into_iter()
                    .collect(),
                _ => Vec::new(),
            }
        }
        Expr::Call(base, func) => call(ctx, func, eval(ctx, base, focus), focus),
        Expr::Binary(op, lhs, rhs) => binary(*op, eval(ctx, lhs, focus), eval(ctx, rhs, focus)),
        Expr::TypeOp { is, expr, ty } => {
            let items = eval(ctx, expr, focus);
            if *is {
                match items.as_slice() {
                    [item] => boolean(is_type(ctx, item, ty)),
                    _ => Vec::new(),
                }
            } else {
                items
                    .into_iter()
                    .filter(|item| is_type(ctx, item, ty))
                    .collect()
            }
        }
    }
}

fn call<'a>(
    ctx: &Ctx<'a>,
    func: &'a Func,
    items: Vec<Item<'a>>,
    focus: &[Item<'a>],
) -> Vec<Item<'a>> {
    let holds = |criteria: &'a Expr, item: &Item<'a>| {
        truth(&eval(ctx, criteria, std::slice::from_ref(item))) == Some(true)
    };
    match func {
        Func::Where(criteria) => items.into_iter().filter(|i| holds(criteria, i)).collect(),
        Func::Select(projection) => items
            .iter()
            .flat_map(|i| eval(ctx, projection, std::slice::from_ref(i)))
            .collect(),
        Func::All(criteria) => boolean(items.iter().all(|i| holds(criteria, i))),
        Func::Exists(None) => boolean(!items.is_empty()),
        Func::Exists(Some(criteria)) => boolean(items.iter().any(|i| holds(criteria, i))),
        Func::Union(other) => union(items, eval(ctx, other, focus)),
        Func::Empty => boolean(items.is_empty()),
        Func::Not => maybe_boolean(truth(&items).map(|b| !b)),
        Func::HasValue => boolean(matches!(
            items.as_slice(),
            [i] if !matches!(i.value, Value::Object(_) | Value::Array(_) | Value::Null)
        )),
        Func::First => items.into_iter().take(1).collect(),
        Func::Last => items.last().copied().into_iter().collect(),
        Func::Tail => items.into_iter().skip(1).collect(),
        Func::Single => match items.as_slice() {
            [_] => items,
            _ => Vec::new(),
        },
        Func::OfType(ty) => items
            .into_iter()
            .filter(|item| is_type(ctx, item, ty))
            .collect(),
        Func::Is(ty) => match items.as_slice() {
            [item] => boolean(is_type(ctx, item, ty)),
            _ => Vec::new(),
        },
        Func::Resolve => items.iter().filter_map(|i| resolve(ctx, i)).collect(),
        Func::Extension(url) => members(ctx, &items, "extension")
            .into_iter()
            .filter(|e| e.value.get("url").and_then(Value::as_str) == Some(url.as_str()))
            .collect(),
    }
}

fn binary<'a>(op: BinOp, lhs: Vec<Item<'a>>, rhs: Vec<Item<'a>>) -> Vec<Item<'a>> {
    match op {
        BinOp::Union => union(lhs, rhs),
        BinOp::Eq => maybe_boolean(equal(&lhs, &rhs)),
        BinOp::Ne => maybe_boolean(equal(&lhs, &rhs).map(|b| !b)),
        BinOp::Equiv => boolean(equivalent(&lhs, &rhs)),
        BinOp::NotEquiv => boolean(!equivalent(&lhs, &rhs)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ordering = match (lhs.as_slice(), rhs.as_slice()) {
                ([a], [b]) => compare(a.value, b.value),
                _ => None,
            };
            maybe_boolean(ordering.map(|o| match op {
                BinOp::Lt => o.is_lt(),
                BinOp::Le => o.is_le(),
                BinOp::Gt => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        BinOp::In | BinOp::Contains => {
            let (item, collection) = if op == BinOp::In {
                (lhs, rhs)
            } else {
                (rhs, lhs)
            };
            match item.as_slice() {
                [one] => boolean(collection.iter().any(|c| value_eq(one.value, c.value))),
                _ => Vec::new(),
            }
        }
        BinOp::And => maybe_boolean(match (truth(&lhs), truth(&rhs)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }),
        BinOp::Or => maybe_boolean(match (truth(&lhs), truth(&rhs)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        }),
        BinOp::Xor => maybe_boolean(match (truth(&lhs), truth(&rhs)) {
            (Some(a), Some(b)) => Some(a != b),
            _ => None,
        }),
        BinOp::Implies => maybe_boolean(match (truth(&lhs), truth(&rhs)) {
            (Some(false), _) | (_, Some(true)) => Some(true),
            (Some(true), b) => b,
            (None, _) => None,
        }),
    }
}

/// `lhs | rhs`: both, without repeating an item (the same node of the resource with the
/// same type; computed booleans are shared nodes, so `true | true` is one `true`).
fn union<'a>(mut lhs: Vec<Item<'a>>, rhs: Vec<Item<'a>>) -> Vec<Item<'a>> {
    let same = |a: &Item<'_>, b: &Item<'_>| std::ptr::eq(a.value, b.value) && a.ty == b.ty;
    lhs.extend(rhs);
    if lhs.len() <= 16 {
        let mut out: Vec<Item<'a>> = Vec::with_capacity(lhs.len());
        for item in lhs {
            if !out.iter().any(|o| same(o, &item)) {
                out.push(item);
            }
        }
        return out;
    }
    let mut seen: HashSet<(*const Value, Option<TypeId>)> = HashSet::with_capacity(lhs.len());
    lhs.retain(|item| seen.insert((item.value as *const Value, item.ty)));
    lhs
}

/// FHIRPath `=`: unknown if either side is empty, else equal item by item.
fn equal(lhs: &[Item<'_>], rhs: &[Item<'_>]) -> Option<bool> {
    if lhs.is_empty() || rhs.is_empty() {
        return None;
    }
    Some(lhs.len() == rhs.len() && lhs.iter().zip(rhs).all(|(a, b)| value_eq(a.value, b.value)))
}

/// FHIRPath `~`: like `=`, but strings compare without case and with whitespace collapsed,
/// and two empty collections are equivalent.
fn equivalent(lhs: &[Item<'_>], rhs: &[Item<'_>]) -> bool {
    lhs.len() == rhs.len()
        && lhs.iter().zip(rhs).all(|(a, b)| match (a.value, b.value) {
            (Value::String(x), Value::String(y)) => {
                let words = |s: &str| {
                    s.split_whitespace()
                        .map(str::to_lowercase)
                        .collect::<Vec<_>>()
                };
                words(x) == words(y)
            }
            (x, y) => value_eq(x, y),
        })
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The elements `name` of every item, arrays flattened.
fn members<'a>(ctx: &Ctx<'a>, items: &[Item<'a>], name: &str) -> Vec<Item<'a>> {
    let mut out = Vec::new();
    for item in items {
        member(ctx, *item, name, &mut out);
    }
    out
}

fn member<'a>(ctx: &Ctx<'a>, item: Item<'a>, name: &str, out: &mut Vec<Item<'a>>) {
    let Value::Object(map) = item.value else {
        return;
    };
    match item.ty.and_then(|t| ctx.types.element(t, name)) {
        Some(Element::Single(ty)) => {
            if let Some(value) = map.get(name) {
                push(ctx, value, Some(*ty), out);
            }
        }
        Some(Element::Choice(options)) => {
            for (key, value) in map {
                let is_option = key
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
                if !is_option {
                    continue;
                }
                if let Some((_, ty)) = options.iter().find(|(k, _)| *k == key.as_str()) {
                    push(ctx, value, Some(*ty), out);
                }
            }
        }
        // An unknown type, or an element its type does not define: plain JSON navigation.
        None => {
            if let Some(value) = map.get(name) {
                push(ctx, value, None, out);
            }
        }
    }
}

fn push<'a>(ctx: &Ctx<'a>, value: &'a Value, ty: Option<TypeId>, out: &mut Vec<Item<'a>>) {
    let mut one = |value: &'a Value| {
        if !value.is_null() {
            out.push(Item {
                value,
                ty: ctx.types.concrete(ty, value),
            });
        }
    };
    match value {
        Value::Array(items) => items.iter().for_each(one),
        value => one(value),
    }
}

/// True if `item` is of type `name` (FHIRPath `is`). Without a known type, the JSON kind
/// stands for one (`string`, `boolean`, `decimal`/`integer`), and a resource has its
/// `resourceType`.
fn is_type(ctx: &Ctx<'_>, item: &Item<'_>, name: &str) -> bool {
    if let Some(ty) = item.ty {
        return ctx.types.is_a(ty, name);
    }
    let actual = match item.value {
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "decimal",
        Value::Object(map) => match map.get("resourceType").and_then(Value::as_str) {
            Some(resource_type) => resource_type,
            None => return false,
        },
        _ => return false,
    };
    type_matches(actual, name)
}

/// `resolve()` without a database: a local reference (`#id`) yields the contained resource;
/// a literal reference (`Type/id`, absolute or relative) yields an empty item of its type,
/// enough for `resolve() is Type`; anything else yields nothing.
fn resolve<'a>(ctx: &Ctx<'a>, item: &Item<'a>) -> Option<Item<'a>> {
    let reference = match item.value {
        Value::Object(map) => map.get("reference")?.as_str()?,
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    if let Some(local) = reference.strip_prefix('#') {
        let contained = ctx.root.value.get("contained")?.as_array()?;
        let found = contained
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(local))?;
        return Some(Item {
            value: found,
            ty: ctx.types.of_resource(found),
        });
    }
    let (resource_type, _) = reference_target(reference)?;
    Some(Item {
        value: &NOTHING,
        ty: Some(ctx.types.id(resource_type)?),
    })
}
