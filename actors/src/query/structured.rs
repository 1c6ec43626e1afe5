//! The structured JSON filter form (Sovrium's), read from the [`Value`] the HTTP layer's JSON
//! parser produced: `{"and":[{"field":"status","operator":"equals","value":"active"},
//! {"or":[…]}]}`, plus `{"not":{…}}`, with the fifteen operators of SPEC §4.2.

use tabula_storage::{TableSchema, Value};

use crate::error::{DomainError, DomainResult};
use crate::query::expression::MAX_NESTING;
use crate::query::filter::{Attribute, CompareOp, Filter};
use crate::query::typing::{self, LikeShape, Literal};

/// The operator names of the structured form.
pub const OPERATORS: &[&str] = &[
    "equals",
    "notEquals",
    "greaterThan",
    "lessThan",
    "greaterThanOrEqual",
    "lessThanOrEqual",
    "contains",
    "startsWith",
    "endsWith",
    "isNull",
    "isNotNull",
    "isEmpty",
    "isTrue",
    "isFalse",
    "in",
];

/// Compiles a structured filter; errors name `parameter`.
pub fn parse_structured(
    schema: &TableSchema,
    value: &Value,
    parameter: &str,
) -> DomainResult<Filter> {
    compile(schema, value, parameter, 0)
}

fn bad(parameter: &str, message: impl Into<String>) -> DomainError {
    DomainError::bad_request(parameter, message)
}

fn compile(
    schema: &TableSchema,
    value: &Value,
    parameter: &str,
    depth: usize,
) -> DomainResult<Filter> {
    if depth > MAX_NESTING {
        return Err(bad(
            parameter,
            format!("filter expression too deeply nested (max {MAX_NESTING} levels)"),
        ));
    }
    let Value::Map(entries) = value else {
        return Err(bad(
            parameter,
            format!(
                "a structured filter must be an object, got {}",
                value.kind_name()
            ),
        ));
    };
    for combinator in ["and", "or"] {
        if let Some(parts) = entries.get(combinator) {
            let Value::List(parts) = parts else {
                return Err(bad(
                    parameter,
                    format!("\"{combinator}\" must be an array of conditions"),
                ));
            };
            let compiled = parts
                .iter()
                .map(|part| compile(schema, part, parameter, depth + 1))
                .collect::<DomainResult<Vec<Filter>>>()?;
            return Ok(if combinator == "and" {
                Filter::And(compiled)
            } else {
                Filter::Or(compiled)
            });
        }
    }
    if let Some(inner) = entries.get("not") {
        return Ok(Filter::Not(Box::new(compile(
            schema,
            inner,
            parameter,
            depth + 1,
        )?)));
    }
    let Some(Value::Text(field)) = entries.get("field") else {
        return Err(bad(
            parameter,
            "a structured filter needs \"and\", \"or\", \"not\" or a \"field\" with an \"operator\"",
        ));
    };
    let Some(Value::Text(operator)) = entries.get("operator") else {
        return Err(bad(
            parameter,
            format!("condition on '{field}' needs an \"operator\""),
        ));
    };
    let attribute = Attribute::resolve_for(schema, field, parameter)?;
    let operand = entries.get("value").unwrap_or(&Value::Null);
    condition(schema, attribute, operator, operand, parameter)
}

fn scalar(operand: &Value, operator: &str, parameter: &str) -> DomainResult<Literal> {
    Literal::from_value(operand).ok_or_else(|| {
        bad(
            parameter,
            format!("operator {operator} needs a single value"),
        )
    })
}

fn condition(
    schema: &TableSchema,
    attribute: Attribute,
    operator: &str,
    operand: &Value,
    parameter: &str,
) -> DomainResult<Filter> {
    let comparison = |op: CompareOp| -> DomainResult<Filter> {
        let literal = scalar(operand, operator, parameter)?;
        typing::compare(schema, attribute, op, &literal, parameter)
    };
    let pattern = |shape: LikeShape| -> DomainResult<Filter> {
        let literal = scalar(operand, operator, parameter)?;
        typing::like(
            schema, attribute, &literal, shape, false, operator, parameter,
        )
    };
    match operator {
        "equals" => comparison(CompareOp::Eq),
        "notEquals" => comparison(CompareOp::Ne),
        "greaterThan" => comparison(CompareOp::Gt),
        "lessThan" => comparison(CompareOp::Lt),
        "greaterThanOrEqual" => comparison(CompareOp::Gte),
        "lessThanOrEqual" => comparison(CompareOp::Lte),
        "contains" => {
            let literal = scalar(operand, operator, parameter)?;
            typing::contains(schema, attribute, &literal, operator, parameter)
        }
        "startsWith" => pattern(LikeShape::StartsWith),
        "endsWith" => pattern(LikeShape::EndsWith),
        "isNull" => typing::compare(schema, attribute, CompareOp::Eq, &Literal::Null, parameter),
        "isNotNull" => typing::compare(schema, attribute, CompareOp::Ne, &Literal::Null, parameter),
        "isEmpty" => Ok(Filter::IsEmpty { attribute }),
        "isTrue" => typing::truth(schema, attribute, true, operator, parameter),
        "isFalse" => typing::truth(schema, attribute, false, operator, parameter),
        "in" => {
            let literals = match operand {
                Value::List(items) => items
                    .iter()
                    .map(|item| scalar(item, operator, parameter))
                    .collect::<DomainResult<Vec<Literal>>>()?,
                single => vec![scalar(single, operator, parameter)?],
            };
            typing::one_of(schema, attribute, &literals, parameter)
        }
        other => Err(bad(
            parameter,
            format!(
                "unknown operator '{other}' (expected one of: {})",
                OPERATORS.join(", ")
            ),
        )),
    }
}
