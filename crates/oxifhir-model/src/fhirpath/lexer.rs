//! Splits FHIRPath text into tokens: identifiers (plain or backquoted), string and number
//! literals, `%environment` and `$this`-style variables, punctuation and operators.
//! Keywords (`and`, `is`, `true`, ...) come out as plain identifiers; the parser decides.

use super::ParseError;

/// One token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) offset: usize,
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// An identifier; `quoted` for a backquoted one, which is never a keyword.
    Ident { name: String, quoted: bool },
    /// A string literal, escapes resolved.
    Str(String),
    /// A number literal as written (`1`, `0.50`).
    Num(String),
    /// `%resource`, `%'name'`: the name without `%`.
    Env(String),
    /// `$this`, `$index`, `$total`: the name without `$`.
    Var(String),
    /// Punctuation or a symbolic operator: `.`, `,`, `(`, `)`, `[`, `]`, `{`, `}`, `|`, `=`,
    /// `!=`, `~`, `!~`, `<`, `<=`, `>`, `>=`, `+`, `-`, `*`, `/`, `&`.
    Sym(&'static str),
    /// The end of the text.
    End,
}

const SYMBOLS: [&str; 21] = [
    "!=", "!~", "<=", ">=", ".", ",", "(", ")", "[", "]", "{", "}", "|", "=", "~", "<", ">", "+",
    "-", "*", "/",
];

/// The tokens of `text`, ending with [`Kind::End`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if text[i..].starts_with("//") {
            i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        if text[i..].starts_with("/*") {
            i = text[i + 2..]
                .find("*/")
                .map(|n| i + 2 + n + 2)
                .ok_or_else(|| ParseError::new(start, "unterminated comment"))?;
            continue;
        }
        let kind = if c.is_ascii_alphabetic() || c == b'_' {
            i = ident_end(bytes, i);
            Kind::Ident {
                name: text[start..i].to_string(),
                quoted: false,
            }
        } else if c == b'`' {
            let (name, end) = quoted(text, i, '`')?;
            i = end;
            Kind::Ident { name, quoted: true }
        } else if c == b'\'' {
            let (value, end) = quoted(text, i, '\'')?;
            i = end;
            Kind::Str(value)
        } else if c.is_ascii_digit() {
            i = digits_end(bytes, i);
            if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i = digits_end(bytes, i + 1);
            }
            Kind::Num(text[start..i].to_string())
        } else if c == b'%' {
            match bytes.get(i + 1) {
                Some(b'\'') | Some(b'`') => {
                    let q = if bytes[i + 1] == b'\'' { '\'' } else { '`' };
                    let (name, end) = quoted(text, i + 1, q)?;
                    i = end;
                    Kind::Env(name)
                }
                Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
                    i = ident_end(bytes, i + 1);
                    Kind::Env(text[start + 1..i].to_string())
                }
                _ => return Err(ParseError::new(start, "expected a name after '%'")),
            }
        } else if c == b'$' {
            i = ident_end(bytes, i + 1);
            Kind::Var(text[start + 1..i].to_string())
        } else if c == b'@' {
            return Err(ParseError::new(
                start,
                "date and time literals are not supported",
            ));
        } else if let Some(sym) = SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
            i += sym.len();
            Kind::Sym(sym)
        } else if c == b'&' {
            i += 1;
            Kind::Sym("&")
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            return Err(ParseError::new(
                start,
                format!("unexpected character '{ch}'"),
            ));
        };
        tokens.push(Token {
            kind,
            offset: start,
        });
    }
    tokens.push(Token {
        kind: Kind::End,
        offset: text.len(),
    });
    Ok(tokens)
}

fn ident_end(bytes: &[u8], mut i: usize) -> usize {
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        i += 1;
    }
    i
}

fn digits_end(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Reads a literal quoted with `q` starting at byte `start` (the opening quote); returns its
/// unescaped content and the offset after the closing quote.
fn quoted(text: &str, start: usize, q: char) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((n, c)) = chars.next() {
        if c == q {
            return Ok((out, start + 1 + n + 1));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        match e {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| ParseError::new(start, "bad \\u escape"))?;
                out.push(code);
            }
            other => out.push(other),
        }
    }
    Err(ParseError::new(start, "unterminated literal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn ident(name: &str) -> Kind {
        Kind::Ident {
            name: name.to_string(),
            quoted: false,
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(
            kinds("Patient.telecom.where(system='phone')"),
            [
                ident("Patient"),
                Kind::Sym("."),
                ident("telecom"),
                Kind::Sym("."),
                ident("where"),
                Kind::Sym("("),
                ident("system"),
                Kind::Sym("="),
                Kind::Str("phone".into()),
                Kind::Sym(")"),
                Kind::End,
            ]
        );
        assert_eq!(
            kinds("a != 1.50 | %resource | $this | `div` 'it\\'s'"),
            [
                ident("a"),
                Kind::Sym("!="),
                Kind::Num("1.50".into()),
                Kind::Sym("|"),
                Kind::Env("resource".into()),
                Kind::Sym("|"),
                Kind::Var("this".into()),
                Kind::Sym("|"),
                Kind::Ident {
                    name: "div".into(),
                    quoted: true
                },
                Kind::Str("it's".into()),
                Kind::End,
            ]
        );
        assert_eq!(
            kinds("x[0] // note"),
            [
                ident("x"),
                Kind::Sym("["),
                Kind::Num("0".into()),
                Kind::Sym("]"),
                Kind::End
            ]
        );
        assert_eq!(kinds("'\\u00fc'"), [Kind::Str("ü".into()), Kind::End]);
    }

    #[test]
    fn errors() {
        assert!(tokenize("'open").is_err());
        assert!(tokenize("a # b").is_err());
        assert!(tokenize("@2020").is_err());
        assert!(tokenize("/* open").is_err());
        assert!(tokenize("'\\u12'").is_err());
    }
}
