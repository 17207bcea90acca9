//! A precedence-climbing parser from tokens to the syntax tree the evaluator walks. Only the
//! supported subset parses: an unknown function or an arithmetic operator is a parse error,
//! so an expression that parses can be evaluated. Nesting is limited to [`MAX_DEPTH`].

use serde_json::{Number, Value};

use super::ParseError;
use super::lexer::{Kind, Token, tokenize};

/// The deepest syntax tree accepted (a chain of 128 steps or unions). Evaluation recurses
/// along the tree, so this bounds its stack use whatever the expression.
pub const MAX_DEPTH: usize = 128;

/// A node of the syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// `$this`: the input of the expression or of the current `where(...)` item.
    This,
    /// `%resource`, `%rootResource`, `%context`: the resource being evaluated.
    Root,
    /// A string, number or boolean literal.
    Literal(Value),
    /// `{}`.
    Empty,
    /// A name at the start of a path: a type filter on `$this` when it starts with a capital
    /// letter (`Patient`, `Resource`), else an element of `$this`.
    Ident(String),
    /// `base.name`.
    Member(Box<Expr>, String),
    /// `base[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `base.function(...)`; a call without a base has [`Expr::This`] as its base.
    Call(Box<Expr>, Func),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `expr is Type` (`true`) or `expr as Type` (`false`).
    TypeOp {
        is: bool,
        expr: Box<Expr>,
        ty: String,
    },
}

/// A supported function with its parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Func {
    Where(Box<Expr>),
    Select(Box<Expr>),
    All(Box<Expr>),
    Exists(Option<Box<Expr>>),
    Union(Box<Expr>),
    Empty,
    Not,
    HasValue,
    First,
    Last,
    Tail,
    Single,
    /// `ofType(T)` and `as(T)`.
    OfType(String),
    Is(String),
    Resolve,
    Extension(String),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Union,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// Parses `text` into a tree.
pub(crate) fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        nesting: 0,
    };
    let (expr, _) = parser.expression(0)?;
    match parser.peek() {
        Kind::End => Ok(expr),
        _ => Err(parser.error("unexpected text after the expression")),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// How many [`Parser::expression`] calls are open: the parser's own recursion depth.
    nesting: usize,
}

/// A parsed subtree and its depth.
type Parsed = (Expr, usize);

impl Parser {
    fn peek(&self) -> &Kind {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> &Kind {
        self.tokens
            .get(self.pos + n)
            .or_else(|| self.tokens.last())
            .map_or(&Kind::End, |t| &t.kind)
    }

    fn next(&mut self) -> Kind {
        let kind = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        kind
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        let offset = self.tokens.get(self.pos).map_or(0, |t| t.offset);
        ParseError::new(offset, message)
    }

    fn expect(&mut self, sym: &'static str) -> Result<(), ParseError> {
        if *self.peek() == Kind::Sym(sym) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected '{sym}'")))
        }
    }

    /// The binary operator at the current position with its binding power, if any.
    fn operator(&self) -> Option<(Op, u8)> {
        let op = match self.peek() {
            Kind::Sym("|") => Op::Bin(BinOp::Union),
            Kind::Sym("=") => Op::Bin(BinOp::Eq),
            Kind::Sym("!=") => Op::Bin(BinOp::Ne),
            Kind::Sym("~") => Op::Bin(BinOp::Equiv),
            Kind::Sym("!~") => Op::Bin(BinOp::NotEquiv),
            Kind::Sym("<") => Op::Bin(BinOp::Lt),
            Kind::Sym("<=") => Op::Bin(BinOp::Le),
            Kind::Sym(">") => Op::Bin(BinOp::Gt),
            Kind::Sym(">=") => Op::Bin(BinOp::Ge),
            Kind::Sym("+" | "-" | "*" | "/" | "&") => Op::Arithmetic,
            Kind::Ident {
                name,
                quoted: false,
            } => match name.as_str() {
                "and" => Op::Bin(BinOp::And),
                "or" => Op::Bin(BinOp::Or),
                "xor" => Op::Bin(BinOp::Xor),
                "implies" => Op::Bin(BinOp::Implies),
                "in" => Op::Bin(BinOp::In),
                "contains" => Op::Bin(BinOp::Contains),
                "is" => Op::Type(true),
                "as" => Op::Type(false),
                "div" | "mod" => Op::Arithmetic,
                _ => return None,
            },
            _ => return None,
        };
        let power = match op {
            Op::Arithmetic => 9,
            Op::Type(_) => 8,
            Op::Bin(BinOp::Union) => 7,
            Op::Bin(BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge) => 6,
            Op::Bin(BinOp::Eq | BinOp::Ne | BinOp::Equiv | BinOp::NotEquiv) => 5,
            Op::Bin(BinOp::In | BinOp::Contains) => 4,
            Op::Bin(BinOp::And) => 3,
            Op::Bin(BinOp::Or | BinOp::Xor) => 2,
            Op::Bin(BinOp::Implies) => 1,
        };
        Some((op, power))
    }

    /// An expression whose operators all bind tighter than `min_power`.
    fn expression(&mut self, min_power: u8) -> Result<Parsed, ParseError> {
        self.nesting += 1;
        let result = if self.nesting > MAX_DEPTH {
            Err(self.error(format!("expression nested deeper than {MAX_DEPTH}")))
        } else {
            self.binary(min_power)
        };
        self.nesting -= 1;
        result
    }

    fn binary(&mut self, min_power: u8) -> Result<Parsed, ParseError> {
        let (mut lhs, mut depth) = self.term()?;
        while let Some((op, power)) = self.operator() {
            if power <= min_power {
                break;
            }
            if op == Op::Arithmetic {
                return Err(self.error("arithmetic operators are not supported"));
            }
            self.pos += 1;
            match op {
                Op::Type(is) => {
                    let ty = self.type_specifier()?;
                    lhs = Expr::TypeOp {
                        is,
                        expr: Box::new(lhs),
                        ty,
                    };
                    depth += 1;
                }
                Op::Bin(bin) => {
                    let (rhs, rhs_depth) = self.expression(power)?;
                    lhs = Expr::Binary(bin, Box::new(lhs), Box::new(rhs));
                    depth = depth.max(rhs_depth) + 1;
                }
                Op::Arithmetic => {}
            }
            self.check_depth(depth)?;
        }
        Ok((lhs, depth))
    }

    fn check_depth(&self, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("expression nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    /// A type name, possibly qualified (`FHIR.Quantity`, `System.String`): the last part.
    fn type_specifier(&mut self) -> Result<String, ParseError> {
        let mut name = match self.next() {
            Kind::Ident { name, .. } => name,
            _ => return Err(self.error("expected a type name")),
        };
        while *self.peek() == Kind::Sym(".") {
            self.pos += 1;
            match self.next() {
                Kind::Ident { name: part, .. } => name = part,
                _ => return Err(self.error("expected a type name")),
            }
        }
        Ok(name)
    }

    /// A term followed by any number of `.member`, `.function(...)` and `[index]`.
    fn term(&mut self) -> Result<Parsed, ParseError> {
        let (mut expr, mut depth) = self.primary()?;
        loop {
            match self.peek() {
                Kind::Sym(".") => {
                    self.pos += 1;
                    let name = match self.next() {
                        Kind::Ident { name, .. } => name,
                        _ => return Err(self.error("expected a name after '.'")),
                    };
                    if *self.peek() == Kind::Sym("(") {
                        let (func, d) = self.call(&name)?;
                        expr = Expr::Call(Box::new(expr), func);
                        depth = depth.max(d);
                    } else {
                        expr = Expr::Member(Box::new(expr), name);
                    }
                }
                Kind::Sym("[") => {
                    self.pos += 1;
                    let (index, d) = self.expression(0)?;
                    self.expect("]")?;
                    expr = Expr::Index(Box::new(expr), Box::new(index));
                    depth = depth.max(d);
                }
                _ => return Ok((expr, depth)),
            }
            depth += 1;
            self.check_depth(depth)?;
        }
    }

    fn primary(&mut self) -> Result<Parsed, ParseError> {
        let leaf = |e| Ok((e, 1));
        match self.next() {
            Kind::Str(s) => leaf(Expr::Literal(Value::String(s))),
            Kind::Num(n) => match n.parse::<Number>() {
                Ok(number) => leaf(Expr::Literal(Value::Number(number))),
                Err(_) => Err(self.error("bad number")),
            },
            Kind::Env(name) => match name.as_str() {
                "resource" | "rootResource" | "context" => leaf(Expr::Root),
                _ => Err(self.error(format!("unknown environment variable %{name}"))),
            },
            Kind::Var(name) if name == "this" => leaf(Expr::This),
            Kind::Var(name) => Err(self.error(format!("unsupported variable ${name}"))),
            Kind::Sym("(") => {
                let (inner, depth) = self.expression(0)?;
                self.expect(")")?;
                Ok((inner, depth + 1))
            }
            Kind::Sym("{") => {
                self.expect("}")?;
                leaf(Expr::Empty)
            }
            Kind::Sym("-" | "+") => Err(self.error("unary operators are not supported")),
            Kind::Ident { name, quoted } => {
                if !quoted && *self.peek() == Kind::Sym("(") {
                    let (func, depth) = self.call(&name)?;
                    return Ok((Expr::Call(Box::new(Expr::This), func), depth + 1));
                }
                match (name.as_str(), quoted) {
                    ("true", false) => leaf(Expr::Literal(Value::Bool(true))),
                    ("false", false) => leaf(Expr::Literal(Value::Bool(false))),
                    _ => leaf(Expr::Ident(name)),
                }
            }
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.error("expected an expression"))
            }
        }
    }

    /// The arguments of function `name` (the current token is its `(`).
    fn call(&mut self, name: &str) -> Result<(Func, usize), ParseError> {
        self.expect("(")?;
        let mut args: Vec<Parsed> = Vec::new();
        if *self.peek() != Kind::Sym(")") {
            loop {
                args.push(self.expression(0)?);
                if *self.peek() != Kind::Sym(",") {
                    break;
                }
                self.pos += 1;
            }
        }
        self.expect(")")?;
        let depth = args.iter().map(|(_, d)| *d).max().unwrap_or(0) + 1;
        let arity = args.len();
        let mut args = args.into_iter().map(|(e, _)| e);
        let mut one = || args.next().map(Box::new);
        let func = match (name, arity) {
            ("where", 1) => one().map(Func::Where),
            ("select", 1) => one().map(Func::Select),
            ("all", 1) => one().map(Func::All),
            ("exists", 0) => Some(Func::Exists(None)),
            ("exists", 1) => Some(Func::Exists(one())),
            ("union", 1) => one().map(Func::Union),
            ("empty", 0) => Some(Func::Empty),
            ("not", 0) => Some(Func::Not),
            ("hasValue", 0) => Some(Func::HasValue),
            ("first", 0) => Some(Func::First),
            ("last", 0) => Some(Func::Last),
            ("tail", 0) => Some(Func::Tail),
            ("single", 0) => Some(Func::Single),
            ("resolve", 0) => Some(Func::Resolve),
            ("ofType" | "as", 1) => one().and_then(|e| type_name(&e)).map(Func::OfType),
            ("is", 1) => one().and_then(|e| type_name(&e)).map(Func::Is),
            ("extension", 1) => match one().map(|e| *e) {
                Some(Expr::Literal(Value::String(url))) => Some(Func::Extension(url)),
                _ => None,
            },
            _ => {
                return Err(self.error(format!(
                    "unsupported function {name}() with {arity} arguments"
                )));
            }
        };
        func.map(|f| (f, depth))
            .ok_or_else(|| self.error(format!("bad argument to {name}()")))
    }
}

/// An operator found between two terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Bin(BinOp),
    /// `is` (`true`) or `as` (`false`).
    Type(bool),
    Arithmetic,
}

/// The type named by a function argument: `Quantity`, `dateTime`, `FHIR.Quantity`.
fn type_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Member(base, name) if matches!(**base, Expr::Ident(_)) => Some(name.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(n: &str) -> Box<Expr> {
        Box::new(Expr::Ident(n.to_string()))
    }

    fn member(base: Box<Expr>, n: &str) -> Box<Expr> {
        Box::new(Expr::Member(base, n.to_string()))
    }

    fn check(text: &str, expected: Expr) {
        assert_eq!(parse(text), Ok(expected), "{text}");
    }

    #[test]
    fn paths_unions_and_types() {
        check("Patient.name", *member(ident("Patient"), "name"));
        check(
            "(Observation.value as Quantity) | Observation.x",
            Expr::Binary(
                BinOp::Union,
                Box::new(Expr::TypeOp {
                    is: false,
                    expr: member(ident("Observation"), "value"),
                    ty: "Quantity".into(),
                }),
                member(ident("Observation"), "x"),
            ),
        );
        check(
            "a.where(resolve() is FHIR.Patient)",
            Expr::Call(
                ident("a"),
                Func::Where(Box::new(Expr::TypeOp {
                    is: true,
                    expr: Box::new(Expr::Call(Box::new(Expr::This), Func::Resolve)),
                    ty: "Patient".into(),
                })),
            ),
        );
        check(
            "a.exists() and a != false",
            Expr::Binary(
                BinOp::And,
                Box::new(Expr::Call(ident("a"), Func::Exists(None))),
                Box::new(Expr::Binary(
                    BinOp::Ne,
                    ident("a"),
                    Box::new(Expr::Literal(Value::Bool(false))),
                )),
            ),
        );
        check(
            "x.as(dateTime)[0]",
            Expr::Index(
                Box::new(Expr::Call(ident("x"), Func::OfType("dateTime".into()))),
                Box::new(Expr::Literal(Value::Number(0.into()))),
            ),
        );
        check(
            "extension('http://x').value",
            *member(
                Box::new(Expr::Call(
                    Box::new(Expr::This),
                    Func::Extension("http://x".into()),
                )),
                "value",
            ),
        );
        check("%resource.id", *member(Box::new(Expr::Root), "id"));
    }

    #[test]
    fn rejects_what_it_cannot_evaluate() {
        for text in [
            "",
            "a.",
            "a b",
            "(a",
            "a + 1",
            "-a",
            "a.frobnicate()",
            "a.where()",
            "a.extension(b)",
            "%unknown",
            "$index",
            "a.ofType('x')",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(parse(&deep).is_err());
        let long = vec!["a"; 300].join(" | ");
        assert!(parse(&long).is_err());
        let chain = vec!["a"; 300].join(".");
        assert!(parse(&chain).is_err());
        let ok = vec!["a"; 100].join(" | ");
        assert!(parse(&ok).is_ok());
    }
}
