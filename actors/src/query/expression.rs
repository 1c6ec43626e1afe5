//! The filter expression language of SPEC §4.2 (AYB's): lexer, recursive-descent parser and the
//! printer that writes a tree back as an expression.
//!
//! Grammar (keywords case-insensitive; AND binds tighter than OR, both left-associative):
//!
//! ```text
//! expression := and_chain ( ("OR" | "||") and_chain )*
//! and_chain  := primary ( ("AND" | "&&") primary )*
//! primary    := "(" expression ")" | field operator value | field "IN" "(" value ("," value)* ")"
//! operator   := "=" | "!=" | ">" | ">=" | "<" | "<=" | "~" | "!~"
//! value      := 'text with \' escapes' | integer | decimal | true | false | null | @variable
//! ```
//!
//! Positions in error messages are 0-based character offsets into the expression. A chain
//! `a AND b AND c` becomes one `And([a, b, c])`; a parenthesised group stays its own node, so
//! printing a tree (which parenthesises every nested AND/OR) and parsing it back gives the
//! same tree.

use std::collections::BTreeMap;

use tabula_storage::{TableSchema, Value};

use crate::error::{DomainError, DomainResult};
use crate::query::filter::{Attribute, CompareOp, Filter};
use crate::query::like::has_unescaped_percent;
use crate::query::typing::{self, LikeShape, Literal};

/// The longest expression accepted, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 10_000;
/// The deepest parenthesis nesting accepted.
pub const MAX_NESTING: usize = 50;

/// Values that `@name` placeholders stand for (`@user.id` → `"u1"`), e.g. in a row filter.
pub type Variables = BTreeMap<String, Value>;

const PARAMETER: &str = "filter";

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Identifier(String),
    Text(String),
    Number(Literal),
    Variable(String),
    Compare(CompareOp),
    Like {
        negated: bool,
    },
    AndSymbol,
    OrSymbol,
    OpenParen,
    CloseParen,
    Comma,
    /// A lexical error; lexing stops here so that errors come in position order.
    Invalid(String),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    position: usize,
}

fn tokenize(text: &str) -> Vec<Token> {
    let characters: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0usize;
    let peek = |index: usize| characters.get(index).copied();
    while let Some(character) = peek(at) {
        let start = at;
        let kind = match character {
            c if c.is_whitespace() => {
                at += 1;
                continue;
            }
            '(' => {
                at += 1;
                TokenKind::OpenParen
            }
            ')' => {
                at += 1;
                TokenKind::CloseParen
            }
            ',' => {
                at += 1;
                TokenKind::Comma
            }
            '=' => {
                at += 1;
                TokenKind::Compare(CompareOp::Eq)
            }
            '~' => {
                at += 1;
                TokenKind::Like { negated: false }
            }
            '!' if peek(at + 1) == Some('=') => {
                at += 2;
                TokenKind::Compare(CompareOp::Ne)
            }
            '!' if peek(at + 1) == Some('~') => {
                at += 2;
                TokenKind::Like { negated: true }
            }
            '>' | '<' => {
                let or_equal = peek(at + 1) == Some('=');
                at += if or_equal { 2 } else { 1 };
                TokenKind::Compare(match (character, or_equal) {
                    ('>', false) => CompareOp::Gt,
                    ('>', true) => CompareOp::Gte,
                    ('<', false) => CompareOp::Lt,
                    _ => CompareOp::Lte,
                })
            }
            '&' if peek(at + 1) == Some('&') => {
                at += 2;
                TokenKind::AndSymbol
            }
            '|' if peek(at + 1) == Some('|') => {
                at += 2;
                TokenKind::OrSymbol
            }
            '\'' => {
                let mut content = String::new();
                at += 1;
                let mut closed = false;
                while let Some(next) = peek(at) {
                    at += 1;
                    match next {
                        '\\' => match peek(at) {
                            Some(escaped) => {
                                content.push(escaped);
                                at += 1;
                            }
                            None => break,
                        },
                        '\'' => {
                            closed = true;
                            break;
                        }
                        other => content.push(other),
                    }
                }
                if closed {
                    TokenKind::Text(content)
                } else {
                    TokenKind::Invalid(format!("unterminated string at position {start}"))
                }
            }
            c if c.is_ascii_digit()
                || (c == '-' && peek(at + 1).is_some_and(|next| next.is_ascii_digit())) =>
            {
                at += 1;
                while peek(at).is_some_and(|next| next.is_ascii_digit()) {
                    at += 1;
                }
                let mut is_decimal = false;
                if peek(at) == Some('.') && peek(at + 1).is_some_and(|next| next.is_ascii_digit()) {
                    is_decimal = true;
                    at += 1;
                    while peek(at).is_some_and(|next| next.is_ascii_digit()) {
                        at += 1;
                    }
                }
                if matches!(peek(at), Some('e' | 'E')) {
                    let sign = usize::from(matches!(peek(at + 1), Some('+' | '-')));
                    if peek(at + 1 + sign).is_some_and(|next| next.is_ascii_digit()) {
                        is_decimal = true;
                        at += 1 + sign;
                        while peek(at).is_some_and(|next| next.is_ascii_digit()) {
                            at += 1;
                        }
                    }
                }
                let literal: String = characters[start..at].iter().collect();
                number_token(&literal, is_decimal, start)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while peek(at).is_some_and(|next| next.is_ascii_alphanumeric() || next == '_') {
                    at += 1;
                }
                TokenKind::Identifier(characters[start..at].iter().collect())
            }
            '@' => {
                at += 1;
                while peek(at)
                    .is_some_and(|next| next.is_ascii_alphanumeric() || next == '_' || next == '.')
                {
                    at += 1;
                }
                if at == start + 1 {
                    TokenKind::Invalid(format!("unexpected character '@' at position {start}"))
                } else {
                    TokenKind::Variable(characters[start + 1..at].iter().collect())
                }
            }
            other => TokenKind::Invalid(format!(
                "unexpected character '{other}' at position {start}"
            )),
        };
        let stop = matches!(kind, TokenKind::Invalid(_));
        tokens.push(Token {
            kind,
            position: start,
        });
        if stop {
            return tokens;
        }
    }
    tokens.push(Token {
        kind: TokenKind::End,
        position: characters.len(),
    });
    tokens
}

fn number_token(literal: &str, is_decimal: bool, position: usize) -> TokenKind {
    if !is_decimal {
        if let Ok(number) = literal.parse::<i64>() {
            return TokenKind::Number(Literal::Int(number));
        }
    }
    match literal.parse::<f64>() {
        Ok(number) if number.is_finite() => TokenKind::Number(Literal::Float(number)),
        _ => TokenKind::Invalid(format!("number out of range at position {position}")),
    }
}

struct Parser<'a> {
    schema: &'a TableSchema,
    variables: Option<&'a Variables>,
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

fn error(message: impl Into<String>) -> DomainError {
    DomainError::bad_request(PARAMETER, message)
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with `End` or `Invalid`, and the parser never moves past
        // either, so the index stays in bounds; the fallback keeps that a non-panicking fact.
        self.tokens
            .get(self.at)
            .or_else(|| self.tokens.last())
            .unwrap_or(&END)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if !matches!(token.kind, TokenKind::End | TokenKind::Invalid(_)) {
            self.at += 1;
        }
        token
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Identifier(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn parse_or(&mut self) -> DomainResult<Filter> {
        let mut parts = vec![self.parse_and()?];
        while self.peek().kind == TokenKind::OrSymbol || self.is_keyword("or") {
            self.advance();
            parts.push(self.parse_and()?);
        }
        Ok(Filter::any_of(parts))
    }

    fn parse_and(&mut self) -> DomainResult<Filter> {
        let mut parts = vec![self.parse_primary()?];
        while self.peek().kind == TokenKind::AndSymbol || self.is_keyword("and") {
            self.advance();
            parts.push(self.parse_primary()?);
        }
        Ok(Filter::all_of(parts))
    }

    fn parse_primary(&mut self) -> DomainResult<Filter> {
        let token = self.advance();
        match token.kind {
            TokenKind::OpenParen => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return Err(error(format!(
                        "filter expression too deeply nested (max {MAX_NESTING} levels)"
                    )));
                }
                let inner = self.parse_or()?;
                match self.advance().kind {
                    TokenKind::CloseParen => {}
                    TokenKind::Invalid(message) => return Err(error(message)),
                    _ => return Err(error("expected closing parenthesis")),
                }
                self.depth -= 1;
                Ok(inner)
            }
            TokenKind::Identifier(name) => self.parse_comparison(&name),
            TokenKind::Invalid(message) => Err(error(message)),
            TokenKind::End => Err(error("unexpected end of filter expression")),
            _ => Err(error(format!(
                "expected a field name at position {}",
                token.position
            ))),
        }
    }

    fn parse_comparison(&mut self, name: &str) -> DomainResult<Filter> {
        let attribute = Attribute::resolve_for(self.schema, name, PARAMETER)?;
        if self.is_keyword("in") {
            self.advance();
            return self.parse_in(attribute);
        }
        let operator = self.advance();
        match operator.kind {
            TokenKind::Compare(op) => {
                let literal = self.parse_value()?;
                typing::compare(self.schema, attribute, op, &literal, PARAMETER)
            }
            TokenKind::Like { negated } => {
                let literal = self.parse_value()?;
                let symbol = if negated { "!~" } else { "~" };
                typing::like(
                    self.schema,
                    attribute,
                    &literal,
                    LikeShape::Pattern,
                    negated,
                    symbol,
                    PARAMETER,
                )
            }
            TokenKind::Invalid(message) => Err(error(message)),
            _ => Err(error("expected operator after field name")),
        }
    }

    fn parse_in(&mut self, attribute: Attribute) -> DomainResult<Filter> {
        let open = self.advance();
        match open.kind {
            TokenKind::OpenParen => {}
            TokenKind::Invalid(message) => return Err(error(message)),
            _ => {
                return Err(error(format!(
                    "expected '(' after IN at position {}",
                    open.position
                )))
            }
        }
        let mut literals = vec![self.parse_value()?];
        loop {
            let next = self.advance();
            match next.kind {
                TokenKind::Comma => literals.push(self.parse_value()?),
                TokenKind::CloseParen => break,
                TokenKind::Invalid(message) => return Err(error(message)),
                _ => return Err(error("expected closing parenthesis")),
            }
        }
        typing::one_of(self.schema, attribute, &literals, PARAMETER)
    }

    fn parse_value(&mut self) -> DomainResult<Literal> {
        let token = self.advance();
        match token.kind {
            TokenKind::Text(text) => Ok(Literal::Text(text)),
            TokenKind::Number(literal) => Ok(literal),
            TokenKind::Identifier(word) if word.eq_ignore_ascii_case("true") => {
                Ok(Literal::Bool(true))
            }
            TokenKind::Identifier(word) if word.eq_ignore_ascii_case("false") => {
                Ok(Literal::Bool(false))
            }
            TokenKind::Identifier(word) if word.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            TokenKind::Variable(name) => {
                let value = self
                    .variables
                    .and_then(|variables| variables.get(&name))
                    .ok_or_else(|| {
                        error(format!(
                            "unknown variable @{name} at position {}",
                            token.position
                        ))
                    })?;
                Literal::from_value(value)
                    .ok_or_else(|| error(format!("variable @{name} is not a single value")))
            }
            TokenKind::Invalid(message) => Err(error(message)),
            TokenKind::End => Err(error("expected a value at end of filter expression")),
            _ => Err(error(format!(
                "expected a value at position {}",
                token.position
            ))),
        }
    }
}

static END: Token = Token {
    kind: TokenKind::End,
    position: 0,
};

/// Parses an expression (SPEC §4.2) into a typed filter tree.
pub fn parse_expression(schema: &TableSchema, text: &str) -> DomainResult<Filter> {
    parse_expression_with(schema, text, None)
}

/// Parses an expression whose values may be `@name` placeholders (row filters: `@user.id`).
pub fn parse_expression_with(
    schema: &TableSchema,
    text: &str,
    variables: Option<&Variables>,
) -> DomainResult<Filter> {
    if text.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(error(format!(
            "filter expression too long (max {MAX_EXPRESSION_CHARS} characters)"
        )));
    }
    if text.trim().is_empty() {
        return Err(error("filter expression is empty"));
    }
    let mut parser = Parser {
        schema,
        variables,
        tokens: tokenize(text),
        at: 0,
        depth: 0,
    };
    let filter = parser.parse_or()?;
    let rest = parser.advance();
    match rest.kind {
        TokenKind::End => Ok(filter),
        TokenKind::Invalid(message) => Err(error(message)),
        TokenKind::CloseParen => Err(error(format!(
            "unexpected ')' at position {}",
            rest.position
        ))),
        _ => Err(error(format!(
            "expected AND or OR at position {}",
            rest.position
        ))),
    }
}

/// Writes a tree as an expression that parses back to the same tree, or `None` when the tree
/// uses what the language cannot say (NOT, isEmpty, an AND/OR of fewer than two parts, a LIKE
/// pattern without `%`, a list or object value, a non-finite number).
pub fn print_expression(schema: &TableSchema, filter: &Filter) -> Option<String> {
    let mut out = String::new();
    print_into(schema, filter, &mut out)?;
    Some(out)
}

fn print_into(schema: &TableSchema, filter: &Filter, out: &mut String) -> Option<()> {
    match filter {
        Filter::And(parts) | Filter::Or(parts) => {
            if parts.len() < 2 {
                return None;
            }
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            for (index, part) in parts.iter().enumerate() {
                if index > 0 {
                    out.push_str(joiner);
                }
                if matches!(part, Filter::And(_) | Filter::Or(_)) {
                    out.push('(');
                    print_into(schema, part, out)?;
                    out.push(')');
                } else {
                    print_into(schema, part, out)?;
                }
            }
        }
        Filter::Compare {
            attribute,
            op,
            value,
        } => {
            out.push_str(attribute.name(schema)?);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            print_value(value, out)?;
        }
        Filter::In { attribute, values } => {
            out.push_str(attribute.name(schema)?);
            out.push_str(" IN (");
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                print_value(value, out)?;
            }
            out.push(')');
        }
        Filter::Like {
            attribute,
            pattern,
            negated,
        } => {
            if !has_unescaped_percent(pattern.as_str()) {
                return None;
            }
            out.push_str(attribute.name(schema)?);
            out.push_str(if *negated { " !~ " } else { " ~ " });
            print_text(pattern.as_str(), out);
        }
        Filter::Not(_) | Filter::IsEmpty { .. } | Filter::After { .. } => return None,
    }
    Some(())
}

fn print_value(value: &Value, out: &mut String) -> Option<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Int(number) => out.push_str(&number.to_string()),
        Value::Float(number) if number.is_finite() => {
            // `{:?}` is the shortest text that reads back as the same f64, and always has a
            // `.` or an exponent, so it lexes as a decimal.
            out.push_str(&format!("{number:?}"));
        }
        Value::Text(text) => print_text(text, out),
        _ => return None,
    }
    Some(())
}

fn print_text(text: &str, out: &mut String) {
    out.push('\'');
    for character in text.chars() {
        if matches!(character, '\'' | '\\') {
            out.push('\\');
        }
        out.push(character);
    }
    out.push('\'');
}
