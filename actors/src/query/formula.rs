//! `filterByFormula` (Airtable-style): `AND({status}='active',{priority}>=3)` with `AND()`,
//! `OR()`, `NOT()`, `{field}` references, `= != <> > >= < <=`, single- or double-quoted strings
//! (`\` escapes the next character), numbers, `TRUE()`, `FALSE()` and `BLANK()`. Positions in
//! errors are 0-based character offsets.

use tabula_storage::TableSchema;

use crate::error::{DomainError, DomainResult};
use crate::query::expression::{MAX_EXPRESSION_CHARS, MAX_NESTING};
use crate::query::filter::{Attribute, CompareOp, Filter};
use crate::query::typing::{self, Literal};

const PARAMETER: &str = "filterByFormula";

fn error(message: impl Into<String>) -> DomainError {
    DomainError::bad_request(PARAMETER, message)
}

/// One side of a comparison.
enum Operand {
    Field(Attribute),
    Literal(Literal),
    Blank,
}

struct FormulaParser<'a> {
    schema: &'a TableSchema,
    characters: Vec<char>,
    at: usize,
    depth: usize,
}

impl FormulaParser<'_> {
    fn skip_space(&mut self) {
        while self
            .characters
            .get(self.at)
            .is_some_and(|c| c.is_whitespace())
        {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.characters.get(self.at).copied()
    }

    fn unexpected(&mut self) -> DomainError {
        match self.peek() {
            Some(character) => error(format!(
                "unexpected character '{character}' at position {}",
                self.at
            )),
            None => error("unexpected end of formula"),
        }
    }

    fn expect(&mut self, wanted: char) -> DomainResult<()> {
        if self.peek() == Some(wanted) {
            self.at += 1;
            Ok(())
        } else if self.peek().is_none() {
            Err(error(format!("expected '{wanted}' at end of formula")))
        } else {
            Err(self.unexpected())
        }
    }

    fn word(&mut self) -> Option<String> {
        self.skip_space();
        let start = self.at;
        while self
            .characters
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
        {
            self.at += 1;
        }
        (self.at > start).then(|| self.characters[start..self.at].iter().collect())
    }

    fn parse_expression(&mut self) -> DomainResult<Filter> {
        let start = self.at;
        if let Some(name) = self.word() {
            let upper = name.to_ascii_uppercase();
            if matches!(upper.as_str(), "AND" | "OR" | "NOT") && self.peek() == Some('(') {
                return self.parse_call(&upper);
            }
            // Not a logical function: read it again as an operand.
            self.at = start;
        }
        self.parse_comparison()
    }

    fn parse_call(&mut self, function: &str) -> DomainResult<Filter> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(error(format!(
                "formula too deeply nested (max {MAX_NESTING} levels)"
            )));
        }
        self.expect('(')?;
        let mut arguments = Vec::new();
        if self.peek() != Some(')') {
            arguments.push(self.parse_expression()?);
            while self.peek() == Some(',') {
                self.at += 1;
                arguments.push(self.parse_expression()?);
            }
        }
        self.expect(')')?;
        self.depth -= 1;
        match function {
            "AND" => Ok(Filter::all_of(arguments)),
            "OR" => Ok(Filter::any_of(arguments)),
            _ => match <[Filter; 1]>::try_from(arguments) {
                Ok([inner]) => Ok(Filter::Not(Box::new(inner))),
                Err(_) => Err(error("NOT() takes exactly one argument")),
            },
        }
    }

    fn parse_comparison(&mut self) -> DomainResult<Filter> {
        let left = self.parse_operand()?;
        let op = self.parse_operator()?;
        let right = self.parse_operand()?;
        let (attribute, op, other) = match (left, right) {
            (Operand::Field(attribute), other) => (attribute, op, other),
            (other, Operand::Field(attribute)) => (attribute, op.flipped(), other),
            _ => return Err(error("a comparison needs a {field} reference on one side")),
        };
        match other {
            Operand::Field(_) => Err(error("comparing two fields is not supported")),
            Operand::Blank => match op {
                CompareOp::Eq => Ok(Filter::IsEmpty { attribute }),
                CompareOp::Ne => Ok(Filter::Not(Box::new(Filter::IsEmpty { attribute }))),
                _ => Err(error("null can only be compared with = or !=")),
            },
            Operand::Literal(literal) => {
                typing::compare(self.schema, attribute, op, &literal, PARAMETER)
            }
        }
    }

    fn parse_operator(&mut self) -> DomainResult<CompareOp> {
        let next = self.peek();
        let following = self.characters.get(self.at + 1).copied();
        let (op, width) = match (next, following) {
            (Some('='), _) => (CompareOp::Eq, 1),
            (Some('!'), Some('=')) => (CompareOp::Ne, 2),
            (Some('<'), Some('>')) => (CompareOp::Ne, 2),
            (Some('>'), Some('=')) => (CompareOp::Gte, 2),
            (Some('<'), Some('=')) => (CompareOp::Lte, 2),
            (Some('>'), _) => (CompareOp::Gt, 1),
            (Some('<'), _) => (CompareOp::Lt, 1),
            (None, _) => return Err(error("expected an operator at end of formula")),
            _ => return Err(self.unexpected()),
        };
        self.at += width;
        Ok(op)
    }

    fn parse_operand(&mut self) -> DomainResult<Operand> {
        let start = self.at;
        match self.peek() {
            Some('{') => {
                self.at += 1;
                let name_start = self.at;
                while self.characters.get(self.at).is_some_and(|c| *c != '}') {
                    self.at += 1;
                }
                if self.at >= self.characters.len() {
                    return Err(error(format!(
                        "unterminated field reference at position {start}"
                    )));
                }
                let name: String = self.characters[name_start..self.at].iter().collect();
                self.at += 1;
                Ok(Operand::Field(Attribute::resolve_for(
                    self.schema,
                    name.trim(),
                    PARAMETER,
                )?))
            }
            Some(quote @ ('\'' | '"')) => {
                let position = self.at;
                self.at += 1;
                let mut text = String::new();
                loop {
                    match self.characters.get(self.at).copied() {
                        None => {
                            return Err(error(format!(
                                "unterminated string at position {position}"
                            )))
                        }
                        Some('\\') => {
                            self.at += 1;
                            match self.characters.get(self.at).copied() {
                                Some(escaped) => text.push(escaped),
                                None => {
                                    return Err(error(format!(
                                        "unterminated string at position {position}"
                                    )))
                                }
                            }
                        }
                        Some(character) if character == quote => break,
                        Some(character) => text.push(character),
                    }
                    self.at += 1;
                }
                self.at += 1;
                Ok(Operand::Literal(Literal::Text(text)))
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '.' => {
                let number_start = self.at;
                self.at += 1;
                while self
                    .characters
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    self.at += 1;
                }
                let text: String = self.characters[number_start..self.at].iter().collect();
                if let Ok(number) = text.parse::<i64>() {
                    Ok(Operand::Literal(Literal::Int(number)))
                } else {
                    match text.parse::<f64>() {
                        Ok(number) if number.is_finite() => {
                            Ok(Operand::Literal(Literal::Float(number)))
                        }
                        _ => Err(error(format!("invalid number at position {number_start}"))),
                    }
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let word_start = self.at;
                let word = self.word().unwrap_or_default().to_ascii_uppercase();
                let call = self.peek() == Some('(');
                if call {
                    self.at += 1;
                    self.expect(')')?;
                }
                match word.as_str() {
                    "TRUE" => Ok(Operand::Literal(Literal::Bool(true))),
                    "FALSE" => Ok(Operand::Literal(Literal::Bool(false))),
                    "BLANK" if call => Ok(Operand::Blank),
                    _ => Err(error(format!(
                        "unknown name '{}' at position {word_start}",
                        word.to_ascii_lowercase()
                    ))),
                }
            }
            None => Err(error("unexpected end of formula")),
            Some(_) => Err(self.unexpected()),
        }
    }
}

/// Compiles a `filterByFormula` value.
pub fn parse_formula(schema: &TableSchema, text: &str) -> DomainResult<Filter> {
    if text.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(error(format!(
            "formula too long (max {MAX_EXPRESSION_CHARS} characters)"
        )));
    }
    let mut parser = FormulaParser {
        schema,
        characters: text.chars().collect(),
        at: 0,
        depth: 0,
    };
    if parser.peek().is_none() {
        return Err(error("formula is empty"));
    }
    let filter = parser.parse_expression()?;
    if parser.peek().is_some() {
        return Err(parser.unexpected());
    }
    Ok(filter)
}
