//! Read-only SQL (`POST /api/query`, SPEC §9): one `SELECT` parsed with `sqlparser` and compiled
//! onto the query engine — `WHERE` into the filter tree (so indexes serve it), `ORDER BY` into
//! sort keys, `COUNT(*)`/`SUM`/`AVG`/`MIN`/`MAX` into the aggregate accumulators, `GROUP BY` into
//! the grouper, `LIMIT`/`OFFSET` into paging. Everything else is refused with a 400 naming what
//! is not supported. See docs/sql.md.

use std::cmp::Ordering;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, ObjectName,
    OrderByExpr, Query, Select, SelectItem, SetExpr, Statement, TableFactor, UnaryOperator,
    Value as SqlValue,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use tabula_storage::{StoredRecord, TableSchema, Value};

use crate::clock;
use crate::error::{DomainError, DomainResult};
use crate::permissions::Principal;
use crate::query::aggregate::{AggregateSpec, Aggregations};
use crate::query::budget::QueryBudget;
use crate::query::execute::{list, ListRequest, SortKey};
use crate::query::filter::{compare_values, Attribute, CompareOp, Filter};
use crate::query::typing::{self, LikeShape, Literal};
use crate::registry::{Registry, TableHandle};

/// The most rows one query returns; a larger `LIMIT` (or none) is cut to this.
pub const MAX_SQL_ROWS: u64 = 10_000;
/// The longest SQL text accepted.
pub const MAX_SQL_CHARS: usize = 100_000;

const PARAMETER: &str = "sql";

/// One column of a result: its name and type (a field type name such as `integer`, or `id`,
/// `datetime`, `user` for system attributes).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlColumn {
    pub name: String,
    pub type_name: String,
}

/// A query's answer: columns and rows of values in column order (ids as strings, times as
/// RFC 3339 text, as the API renders them).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlResult {
    pub columns: Vec<SqlColumn>,
    pub rows: Vec<Vec<Value>>,
}

fn unsupported(what: impl std::fmt::Display) -> DomainError {
    DomainError::bad_request(PARAMETER, format!("Unsupported SQL: {what}"))
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::bad_request(PARAMETER, message)
}

/// The aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Function::Count => "COUNT",
            Function::Sum => "SUM",
            Function::Avg => "AVG",
            Function::Min => "MIN",
            Function::Max => "MAX",
        }
    }
}

/// One output column of the select list.
#[derive(Debug, Clone)]
enum Output {
    Attribute(Attribute),
    /// `COUNT(*)` (field `None`) or `FN(field)`.
    Aggregate(Function, Option<u32>),
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    output: Output,
}

/// Parses, compiles and runs one read-only query as `principal` (an admin: every table it may
/// reach with its credential), within `budget`.
pub fn run_sql(
    registry: &Registry,
    principal: &Principal,
    sql: &str,
    budget: &QueryBudget,
) -> DomainResult<SqlResult> {
    if sql.trim().is_empty() {
        return Err(invalid("sql is required"));
    }
    if sql.chars().count() > MAX_SQL_CHARS {
        return Err(invalid(format!(
            "sql is longer than {MAX_SQL_CHARS} characters"
        )));
    }
    let statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|error| invalid(format!("SQL syntax error: {error}")))?;
    let statement = match statements.as_slice() {
        [] => return Err(invalid("sql is required")),
        [one] => one,
        _ => return Err(unsupported("multiple statements (send one SELECT)")),
    };
    let Statement::Query(query) = statement else {
        return Err(unsupported(format!(
            "{} statements (only SELECT is allowed)",
            statement_kind(statement)
        )));
    };
    let compiled = compile(registry, principal, query)?;
    compiled.run(budget)
}

/// The first keyword of a statement, for the "only SELECT" message.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let mut words = text.split_whitespace();
    words.next().unwrap_or("other").to_ascii_uppercase()
}

/// A compiled query, ready to run.
struct Compiled {
    table: TableHandle,
    schema: std::sync::Arc<TableSchema>,
    columns: Vec<Column>,
    filter: Option<Filter>,
    group_by: Option<u32>,
    grouped: bool,
    order: Vec<(OrderTarget, bool)>,
    limit: u64,
    offset: u64,
}

/// What an `ORDER BY` key refers to.
#[derive(Debug, Clone, Copy)]
enum OrderTarget {
    Attribute(Attribute),
    /// An output column (of a grouped or aggregate query), by position.
    Column(usize),
}

fn compile(registry: &Registry, principal: &Principal, query: &Query) -> DomainResult<Compiled> {
    if query.with.is_some() {
        return Err(unsupported("WITH (common table expressions)"));
    }
    if query.fetch.is_some() || !query.limit_by.is_empty() || !query.locks.is_empty() {
        return Err(unsupported("FETCH, LIMIT BY and locking clauses"));
    }
    if query.for_clause.is_some() || query.settings.is_some() || query.format_clause.is_some() {
        return Err(unsupported("FOR, SETTINGS and FORMAT clauses"));
    }
    let select = match query.body.as_ref() {
        SetExpr::Select(select) => select,
        SetExpr::Query(_) => return Err(unsupported("subqueries")),
        SetExpr::SetOperation { op, .. } => return Err(unsupported(format!("{op}"))),
        SetExpr::Values(_) => return Err(unsupported("VALUES")),
        SetExpr::Insert(_) => {
            return Err(unsupported("INSERT statements (only SELECT is allowed)"))
        }
        SetExpr::Update(_) => {
            return Err(unsupported("UPDATE statements (only SELECT is allowed)"))
        }
        SetExpr::Table(_) => return Err(unsupported("TABLE statements")),
    };
    check_select_clauses(select)?;
    let (table, alias) = from_table(registry, principal, select)?;
    let schema = table.shared.schema();
    let names = Names {
        schema: &schema,
        table: &schema.name,
        alias: alias.as_deref(),
    };
    let filter = match &select.selection {
        Some(expr) => Some(compile_where(&names, expr, 0)?),
        None => None,
    };
    let group_by = match &select.group_by {
        GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL")),
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(unsupported("GROUP BY modifiers (ROLLUP, CUBE, …)"));
            }
            match exprs.as_slice() {
                [] => None,
                [expr] => match names.attribute(expr)? {
                    Attribute::Field(field_id) => Some(field_id),
                    _ => {
                        return Err(unsupported(
                            "GROUP BY a system attribute (group by a field)",
                        ))
                    }
                },
                _ => return Err(unsupported("GROUP BY more than one column")),
            }
        }
    };
    let columns = select_columns(&names, &select.projection)?;
    let has_aggregate = columns
        .iter()
        .any(|column| matches!(column.output, Output::Aggregate(..)));
    let grouped = has_aggregate || group_by.is_some();
    if grouped {
        for column in &columns {
            if let Output::Attribute(attribute) = column.output {
                let is_group = matches!((attribute, group_by), (Attribute::Field(id), Some(group)) if id == group);
                if !is_group {
                    return Err(invalid(format!(
                        "column '{}' must appear in GROUP BY or be used in an aggregate function",
                        column.name
                    )));
                }
            }
        }
    }
    let mut order = Vec::new();
    if let Some(order_by) = &query.order_by {
        if order_by.interpolate.is_some() {
            return Err(unsupported("ORDER BY … INTERPOLATE"));
        }
        for key in &order_by.exprs {
            order.push(order_key(&names, &columns, grouped, group_by, key)?);
        }
    }
    let limit = match &query.limit {
        None => MAX_SQL_ROWS,
        Some(expr) => count_literal(expr, "LIMIT")?.min(MAX_SQL_ROWS),
    };
    let offset = match &query.offset {
        None => 0,
        Some(offset) => count_literal(&offset.value, "OFFSET")?,
    };
    Ok(Compiled {
        table,
        schema: std::sync::Arc::clone(&schema),
        columns,
        filter,
        group_by,
        grouped,
        order,
        limit,
        offset,
    })
}

fn check_select_clauses(select: &Select) -> DomainResult<()> {
    if select.distinct.is_some() {
        return Err(unsupported("DISTINCT"));
    }
    if select.top.is_some() {
        return Err(unsupported("TOP"));
    }
    if select.into.is_some() {
        return Err(unsupported("SELECT INTO"));
    }
    if select.having.is_some() {
        return Err(unsupported("HAVING"));
    }
    if !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || !select.named_window.is_empty()
        || select.qualify.is_some()
        || select.value_table_mode.is_some()
        || select.connect_by.is_some()
    {
        return Err(unsupported(
            "dialect-specific SELECT clauses (LATERAL VIEW, PREWHERE, CLUSTER BY, WINDOW, QUALIFY, CONNECT BY, …)",
        ));
    }
    Ok(())
}

/// The one table of `FROM` (and its alias). Joins, several tables, subqueries and table
/// functions are refused; a table the caller cannot reach is unknown.
fn from_table(
    registry: &Registry,
    principal: &Principal,
    select: &Select,
) -> DomainResult<(TableHandle, Option<String>)> {
    let from = match select.from.as_slice() {
        [] => return Err(unsupported("SELECT without FROM")),
        [one] => one,
        _ => return Err(unsupported("several tables in FROM (joins)")),
    };
    if !from.joins.is_empty() {
        return Err(unsupported("JOIN"));
    }
    let TableFactor::Table {
        name,
        alias,
        args,
        with_hints,
        version,
        partitions,
        ..
    } = &from.relation
    else {
        return Err(match &from.relation {
            TableFactor::Derived { .. } => unsupported("subqueries"),
            _ => unsupported("table functions and nested joins in FROM"),
        });
    };
    if args.is_some() || !with_hints.is_empty() || version.is_some() || !partitions.is_empty() {
        return Err(unsupported(
            "table arguments, hints, versions or partitions",
        ));
    }
    let table_name = single_name(name)?;
    let handle = registry
        .resolve(&table_name)
        .filter(|handle| principal.key_reaches(&handle.shared.schema()))
        .ok_or_else(|| invalid(format!("unknown table: {table_name}")))?;
    let alias = match alias {
        Some(alias) if !alias.columns.is_empty() => {
            return Err(unsupported("column aliases on a table"))
        }
        Some(alias) => Some(alias.name.value.clone()),
        None => None,
    };
    Ok((handle, alias))
}

fn single_name(name: &ObjectName) -> DomainResult<String> {
    match name.0.as_slice() {
        [one] => Ok(one.value.clone()),
        _ => Err(unsupported(format!("qualified table name '{name}'"))),
    }
}

/// Resolves column references of one table.
struct Names<'a> {
    schema: &'a TableSchema,
    table: &'a str,
    alias: Option<&'a str>,
}

impl Names<'_> {
    fn resolve(&self, name: &str) -> DomainResult<Attribute> {
        Attribute::resolve_for(self.schema, name, PARAMETER)
            .map_err(|_| invalid(format!("unknown column: {name}")))
    }

    /// A column reference (`title`, `tasks.title`, `t.title`).
    fn attribute(&self, expr: &Expr) -> DomainResult<Attribute> {
        match expr {
            Expr::Identifier(ident) => self.resolve(&ident.value),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, column]
                    if qualifier.value == self.table
                        || Some(qualifier.value.as_str()) == self.alias =>
                {
                    self.resolve(&column.value)
                }
                [qualifier, _] => Err(invalid(format!("unknown table: {}", qualifier.value))),
                _ => Err(unsupported(format!("column reference '{expr}'"))),
            },
            Expr::Nested(inner) => self.attribute(inner),
            other => Err(unsupported(format!(
                "expression '{other}' (expected a column)"
            ))),
        }
    }

    fn column_type(&self, attribute: Attribute) -> String {
        match attribute {
            Attribute::Id => "id".into(),
            Attribute::CreatedAt | Attribute::UpdatedAt | Attribute::DeletedAt => "datetime".into(),
            Attribute::CreatedBy | Attribute::UpdatedBy => "user".into(),
            Attribute::Field(field_id) => self
                .schema
                .field_by_id(field_id)
                .map_or_else(|| "unknown".into(), |field| field.field_type.to_string()),
        }
    }
}

/// `*` → id, every field, createdAt, updatedAt, createdBy, updatedBy.
fn star_columns(names: &Names) -> Vec<Column> {
    let mut columns = vec![Column {
        name: "id".into(),
        output: Output::Attribute(Attribute::Id),
    }];
    columns.extend(names.schema.fields.iter().map(|field| Column {
        name: field.name.clone(),
        output: Output::Attribute(
            Attribute::resolve(names.schema, &field.name).unwrap_or(Attribute::Field(field.id)),
        ),
    }));
    for (name, attribute) in [
        ("createdAt", Attribute::CreatedAt),
        ("updatedAt", Attribute::UpdatedAt),
        ("createdBy", Attribute::CreatedBy),
        ("updatedBy", Attribute::UpdatedBy),
    ] {
        columns.push(Column {
            name: name.into(),
            output: Output::Attribute(attribute),
        });
    }
    columns
}

fn select_columns(names: &Names, projection: &[SelectItem]) -> DomainResult<Vec<Column>> {
    let mut columns = Vec::new();
    for item in projection {
        match item {
            SelectItem::Wildcard(options) => {
                if options.opt_exclude.is_some()
                    || options.opt_except.is_some()
                    || options.opt_replace.is_some()
                    || options.opt_rename.is_some()
                    || options.opt_ilike.is_some()
                {
                    return Err(unsupported("wildcard options (EXCEPT, EXCLUDE, …)"));
                }
                columns.extend(star_columns(names));
            }
            SelectItem::QualifiedWildcard(name, _) => {
                let qualifier = single_name(name)?;
                if qualifier != names.table && Some(qualifier.as_str()) != names.alias {
                    return Err(invalid(format!("unknown table: {qualifier}")));
                }
                columns.extend(star_columns(names));
            }
            SelectItem::UnnamedExpr(expr) => {
                let output = select_output(names, expr)?;
                columns.push(Column {
                    name: default_column_name(names, expr, &output),
                    output,
                });
            }
            SelectItem::ExprWithAlias { expr, alias } => columns.push(Column {
                name: alias.value.clone(),
                output: select_output(names, expr)?,
            }),
        }
    }
    Ok(columns)
}

/// `count`, `sum_budget`, or the column's own name.
fn default_column_name(names: &Names, expr: &Expr, output: &Output) -> String {
    match output {
        Output::Attribute(attribute) => attribute
            .name(names.schema)
            .map_or_else(|| expr.to_string(), str::to_owned),
        Output::Aggregate(Function::Count, None) => "count".into(),
        Output::Aggregate(function, Some(field_id)) => format!(
            "{}_{}",
            function.name().to_ascii_lowercase(),
            names
                .schema
                .field_by_id(*field_id)
                .map_or("field", |field| field.name.as_str())
        ),
        Output::Aggregate(function, None) => function.name().to_ascii_lowercase(),
    }
}

fn select_output(names: &Names, expr: &Expr) -> DomainResult<Output> {
    match expr {
        Expr::Function(function) => aggregate_output(names, function),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
            Ok(Output::Attribute(names.attribute(expr)?))
        }
        Expr::Nested(inner) => select_output(names, inner),
        other => Err(unsupported(format!(
            "select expression '{other}' (expected a column, *, COUNT(*), SUM, AVG, MIN or MAX)"
        ))),
    }
}

fn aggregate_output(names: &Names, function: &sqlparser::ast::Function) -> DomainResult<Output> {
    let name = function.name.to_string().to_ascii_uppercase();
    let kind = match name.as_str() {
        "COUNT" => Function::Count,
        "SUM" => Function::Sum,
        "AVG" => Function::Avg,
        "MIN" => Function::Min,
        "MAX" => Function::Max,
        _ => return Err(unsupported(format!("function {name}"))),
    };
    if function.filter.is_some()
        || function.over.is_some()
        || function.null_treatment.is_some()
        || !function.within_group.is_empty()
        || !matches!(function.parameters, FunctionArguments::None)
    {
        return Err(unsupported(format!(
            "{name} with FILTER, OVER, WITHIN GROUP or parameters"
        )));
    }
    let FunctionArguments::List(list) = &function.args else {
        return Err(unsupported(format!("{name} without an argument list")));
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(unsupported(format!(
            "{name}(DISTINCT …) and argument clauses"
        )));
    }
    let argument = match list.args.as_slice() {
        [FunctionArg::Unnamed(argument)] => argument,
        _ => return Err(invalid(format!("{name} takes exactly one argument"))),
    };
    match (kind, argument) {
        (Function::Count, FunctionArgExpr::Wildcard) => {
            Ok(Output::Aggregate(Function::Count, None))
        }
        (Function::Count, _) => Err(unsupported(
            "COUNT(column) (use COUNT(*) with WHERE column IS NOT NULL)",
        )),
        (_, FunctionArgExpr::Expr(expr)) => {
            let Attribute::Field(field_id) = names.attribute(expr)? else {
                return Err(unsupported(format!(
                    "{name} of a system attribute (aggregate a field)"
                )));
            };
            let field = names
                .schema
                .field_by_id(field_id)
                .ok_or_else(|| invalid(format!("unknown column: {expr}")))?;
            if matches!(kind, Function::Sum | Function::Avg) && !field.field_type.is_numeric() {
                return Err(invalid(format!(
                    "{name} needs a number column, '{}' is {}",
                    field.name, field.field_type
                )));
            }
            Ok(Output::Aggregate(kind, Some(field_id)))
        }
        _ => Err(invalid(format!("{name} needs a column"))),
    }
}

fn order_key(
    names: &Names,
    columns: &[Column],
    grouped: bool,
    group_by: Option<u32>,
    key: &OrderByExpr,
) -> DomainResult<(OrderTarget, bool)> {
    if key.nulls_first.is_some() || key.with_fill.is_some() {
        return Err(unsupported(
            "NULLS FIRST/LAST and WITH FILL (nulls always sort first)",
        ));
    }
    let descending = key.asc == Some(false);
    // An output column by alias (or by its default name), or by position (`ORDER BY 2`).
    if let Expr::Value(SqlValue::Number(text, _)) = &key.expr {
        let position = text
            .parse::<usize>()
            .ok()
            .filter(|position| (1..=columns.len()).contains(position))
            .ok_or_else(|| {
                invalid(format!(
                    "ORDER BY position {text} is not in the select list"
                ))
            })?;
        return column_target(columns, position - 1, grouped, descending);
    }
    if let Expr::Identifier(ident) = &key.expr {
        if let Some(index) = columns.iter().position(|column| column.name == ident.value) {
            if let Ok(target) = column_target(columns, index, grouped, descending) {
                return Ok(target);
            }
        }
    }
    if let Expr::Function(function) = &key.expr {
        let output = aggregate_output(names, function)?;
        let index = columns
            .iter()
            .position(|column| same_output(&column.output, &output))
            .ok_or_else(|| invalid(format!("ORDER BY {} must also be selected", key.expr)))?;
        return column_target(columns, index, grouped, descending);
    }
    let attribute = names.attribute(&key.expr)?;
    if grouped {
        let index = columns
            .iter()
            .position(|column| same_output(&column.output, &Output::Attribute(attribute)))
            .filter(|_| matches!((attribute, group_by), (Attribute::Field(id), Some(group)) if id == group))
            .ok_or_else(|| {
                invalid(format!(
                    "ORDER BY {} must be a selected GROUP BY column or aggregate",
                    key.expr
                ))
            })?;
        return Ok((OrderTarget::Column(index), descending));
    }
    Ok((OrderTarget::Attribute(attribute), descending))
}

fn column_target(
    columns: &[Column],
    index: usize,
    grouped: bool,
    descending: bool,
) -> DomainResult<(OrderTarget, bool)> {
    match (&columns[index].output, grouped) {
        (_, true) => Ok((OrderTarget::Column(index), descending)),
        (Output::Attribute(attribute), false) => {
            Ok((OrderTarget::Attribute(*attribute), descending))
        }
        (Output::Aggregate(..), false) => Err(invalid("ORDER BY an aggregate needs GROUP BY")),
    }
}

fn same_output(left: &Output, right: &Output) -> bool {
    match (left, right) {
        (Output::Attribute(a), Output::Attribute(b)) => a == b,
        (Output::Aggregate(f, a), Output::Aggregate(g, b)) => f == g && a == b,
        _ => false,
    }
}

/// A non-negative integer literal (`LIMIT 10`).
fn count_literal(expr: &Expr, clause: &str) -> DomainResult<u64> {
    match expr {
        Expr::Value(SqlValue::Number(text, _)) => text
            .parse::<u64>()
            .map_err(|_| invalid(format!("{clause} must be a non-negative integer"))),
        _ => Err(invalid(format!("{clause} must be a non-negative integer"))),
    }
}

/// The deepest `WHERE` nesting accepted (as the filter language's 50).
const MAX_WHERE_DEPTH: usize = 50;

fn compile_where(names: &Names, expr: &Expr, depth: usize) -> DomainResult<Filter> {
    if depth > MAX_WHERE_DEPTH {
        return Err(invalid(format!(
            "WHERE is too deeply nested (max {MAX_WHERE_DEPTH} levels)"
        )));
    }
    let schema = names.schema;
    match expr {
        Expr::Nested(inner) => compile_where(names, inner, depth + 1),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Ok(Filter::and_into(
                Some(compile_where(names, left, depth + 1)?),
                compile_where(names, right, depth + 1)?,
            )),
            BinaryOperator::Or => Ok(Filter::Or(vec![
                compile_where(names, left, depth + 1)?,
                compile_where(names, right, depth + 1)?,
            ])),
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq => {
                let op = match op {
                    BinaryOperator::Eq => CompareOp::Eq,
                    BinaryOperator::NotEq => CompareOp::Ne,
                    BinaryOperator::Lt => CompareOp::Lt,
                    BinaryOperator::LtEq => CompareOp::Lte,
                    BinaryOperator::Gt => CompareOp::Gt,
                    _ => CompareOp::Gte,
                };
                let (attribute, op, literal) = match (literal(right), literal(left)) {
                    (Some(value), _) => (names.attribute(left)?, op, value?),
                    (None, Some(value)) => (names.attribute(right)?, op.flipped(), value?),
                    (None, None) => {
                        return Err(unsupported(format!(
                            "comparison '{expr}' (compare a column with a literal)"
                        )))
                    }
                };
                if literal == Literal::Null {
                    return Err(invalid(format!(
                        "'{expr}': use IS NULL / IS NOT NULL to test for null"
                    )));
                }
                typing::compare(schema, attribute, op, &literal, PARAMETER)
            }
            other => Err(unsupported(format!("operator {other}"))),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Ok(Filter::Not(Box::new(compile_where(
            names,
            expr,
            depth + 1,
        )?))),
        Expr::IsNull(inner) => typing::compare(
            schema,
            names.attribute(inner)?,
            CompareOp::Eq,
            &Literal::Null,
            PARAMETER,
        ),
        Expr::IsNotNull(inner) => typing::compare(
            schema,
            names.attribute(inner)?,
            CompareOp::Ne,
            &Literal::Null,
            PARAMETER,
        ),
        Expr::InList {
            expr: inner,
            list,
            negated,
        } => {
            let attribute = names.attribute(inner)?;
            let literals = list
                .iter()
                .map(|item| {
                    literal(item).unwrap_or_else(|| {
                        Err(unsupported(format!(
                            "IN list item '{item}' (literals only)"
                        )))
                    })
                })
                .collect::<DomainResult<Vec<Literal>>>()?;
            if literals.contains(&Literal::Null) {
                return Err(invalid("IN lists may not contain NULL"));
            }
            let filter = typing::one_of(schema, attribute, &literals, PARAMETER)?;
            Ok(if *negated {
                Filter::Not(Box::new(filter))
            } else {
                filter
            })
        }
        Expr::InSubquery { .. } => Err(unsupported("subqueries")),
        Expr::Between {
            expr: inner,
            negated,
            low,
            high,
        } => {
            let attribute = names.attribute(inner)?;
            let bound = |expr: &Expr| {
                literal(expr).unwrap_or_else(|| {
                    Err(unsupported(format!(
                        "BETWEEN bound '{expr}' (literals only)"
                    )))
                })
            };
            let filter = Filter::And(vec![
                typing::compare(schema, attribute, CompareOp::Gte, &bound(low)?, PARAMETER)?,
                typing::compare(schema, attribute, CompareOp::Lte, &bound(high)?, PARAMETER)?,
            ]);
            Ok(if *negated {
                Filter::Not(Box::new(filter))
            } else {
                filter
            })
        }
        Expr::Like {
            negated,
            any,
            expr: inner,
            pattern,
            escape_char,
        }
        | Expr::ILike {
            negated,
            any,
            expr: inner,
            pattern,
            escape_char,
        } => {
            if *any || escape_char.is_some() {
                return Err(unsupported(
                    "LIKE ANY and LIKE … ESCAPE (the escape is '\\')",
                ));
            }
            let attribute = names.attribute(inner)?;
            let operand = literal(pattern).unwrap_or_else(|| {
                Err(unsupported(format!(
                    "LIKE pattern '{pattern}' (literals only)"
                )))
            })?;
            let Literal::Text(text) = &operand else {
                return Err(invalid("LIKE needs a text pattern"));
            };
            // Validates the column's type; SQL patterns are used exactly as written.
            match typing::like(
                schema,
                attribute,
                &operand,
                LikeShape::Pattern,
                *negated,
                "LIKE",
                PARAMETER,
            )? {
                Filter::Like {
                    attribute, negated, ..
                } => Ok(Filter::Like {
                    attribute,
                    pattern: text.as_str().into(),
                    negated,
                }),
                other => Ok(other),
            }
        }
        Expr::Exists { .. } | Expr::Subquery(_) => Err(unsupported("subqueries")),
        Expr::Function(function) => Err(unsupported(format!(
            "function {} in WHERE",
            function.name.to_string().to_ascii_uppercase()
        ))),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
            // A bare boolean column: `WHERE done`.
            let attribute = names.attribute(expr)?;
            typing::compare(
                schema,
                attribute,
                CompareOp::Eq,
                &Literal::Bool(true),
                PARAMETER,
            )
        }
        other => Err(unsupported(format!("WHERE expression '{other}'"))),
    }
}

/// A literal (`'text'`, `3`, `-2.5`, `TRUE`, `NULL`); `None` when the expression is not one.
fn literal(expr: &Expr) -> Option<DomainResult<Literal>> {
    match expr {
        Expr::Value(value) => Some(match value {
            SqlValue::Null => Ok(Literal::Null),
            SqlValue::Boolean(flag) => Ok(Literal::Bool(*flag)),
            SqlValue::Number(text, _) => number_literal(text),
            SqlValue::SingleQuotedString(text) | SqlValue::DoubleQuotedString(text) => {
                Ok(Literal::Text(text.clone()))
            }
            other => Err(unsupported(format!("literal {other}"))),
        }),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match inner.as_ref() {
            Expr::Value(SqlValue::Number(text, _)) => Some(number_literal(&format!("-{text}"))),
            _ => None,
        },
        Expr::Nested(inner) => literal(inner),
        _ => None,
    }
}

fn number_literal(text: &str) -> DomainResult<Literal> {
    if let Ok(number) = text.parse::<i64>() {
        return Ok(Literal::Int(number));
    }
    match text.parse::<f64>() {
        Ok(number) if number.is_finite() => Ok(Literal::Float(number)),
        _ => Err(invalid(format!("invalid number {text}"))),
    }
}

impl Compiled {
    fn run(self, budget: &QueryBudget) -> DomainResult<SqlResult> {
        let names = Names {
            schema: &self.schema,
            table: &self.schema.name,
            alias: None,
        };
        let columns: Vec<SqlColumn> = self
            .columns
            .iter()
            .map(|column| SqlColumn {
                name: column.name.clone(),
                type_name: match &column.output {
                    Output::Attribute(attribute) => names.column_type(*attribute),
                    Output::Aggregate(Function::Count, _) => "integer".into(),
                    Output::Aggregate(Function::Avg, _) => "decimal".into(),
                    Output::Aggregate(_, Some(field_id)) => {
                        names.column_type(Attribute::Field(*field_id))
                    }
                    Output::Aggregate(_, None) => "decimal".into(),
                },
            })
            .collect();
        let rows = if self.grouped {
            self.grouped_rows(budget)?
        } else {
            self.record_rows(budget)?
        };
        Ok(SqlResult { columns, rows })
    }

    fn record_rows(&self, budget: &QueryBudget) -> DomainResult<Vec<Vec<Value>>> {
        let request = ListRequest {
            filter: self.filter.clone(),
            sort: self
                .order
                .iter()
                .filter_map(|(target, descending)| match target {
                    OrderTarget::Attribute(attribute) => Some(SortKey {
                        attribute: *attribute,
                        descending: *descending,
                    }),
                    OrderTarget::Column(_) => None,
                })
                .collect(),
            offset: self.offset,
            limit: self.limit,
            skip_total: true,
            budget: *budget,
            ..ListRequest::default()
        };
        let page = list(&self.table.shared, &request)?;
        Ok(page
            .records
            .iter()
            .map(|record| {
                self.columns
                    .iter()
                    .map(|column| match column.output {
                        Output::Attribute(attribute) => attribute_value(attribute, record),
                        Output::Aggregate(..) => Value::Null,
                    })
                    .collect()
            })
            .collect())
    }

    fn aggregate_spec(&self) -> AggregateSpec {
        let mut spec = AggregateSpec {
            count: true,
            ..AggregateSpec::default()
        };
        for column in &self.columns {
            if let Output::Aggregate(function, Some(field_id)) = column.output {
                let list = match function {
                    Function::Sum => &mut spec.sum,
                    Function::Avg => &mut spec.avg,
                    Function::Min => &mut spec.min,
                    Function::Max => &mut spec.max,
                    Function::Count => continue,
                };
                if !list.contains(&field_id) {
                    list.push(field_id);
                }
            }
        }
        spec
    }

    fn grouped_rows(&self, budget: &QueryBudget) -> DomainResult<Vec<Vec<Value>>> {
        let spec = self.aggregate_spec();
        let request = ListRequest {
            filter: self.filter.clone(),
            limit: 0,
            skip_total: true,
            aggregate: Some(spec),
            group_by: self.group_by,
            budget: *budget,
            ..ListRequest::default()
        };
        let page = list(&self.table.shared, &request)?;
        let mut rows: Vec<Vec<Value>> = match (&page.groups, &page.aggregations) {
            (Some(groups), _) => groups
                .iter()
                .map(|group| self.row_of(Some(&group.name), group.aggregations.as_ref()))
                .collect(),
            (None, aggregations) => vec![self.row_of(None, aggregations.as_ref())],
        };
        if !self.order.is_empty() {
            rows.sort_by(|left, right| {
                for (target, descending) in &self.order {
                    let OrderTarget::Column(index) = target else {
                        continue;
                    };
                    let ordering = compare_values(&left[*index], &right[*index]);
                    let ordering = if *descending {
                        ordering.reverse()
                    } else {
                        ordering
                    };
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                }
                Ordering::Equal
            });
        }
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        Ok(rows.into_iter().skip(offset).take(limit).collect())
    }

    fn row_of(&self, group: Option<&Value>, aggregations: Option<&Aggregations>) -> Vec<Value> {
        let field_name = |field_id: u32| {
            self.schema
                .field_by_id(field_id)
                .map_or_else(|| field_id.to_string(), |field| field.name.clone())
        };
        self.columns
            .iter()
            .map(|column| match column.output {
                Output::Attribute(_) => group.cloned().unwrap_or(Value::Null),
                Output::Aggregate(Function::Count, _) => aggregations
                    .and_then(|aggregations| aggregations.count)
                    .map_or(Value::Int(0), |count| {
                        Value::Int(i64::try_from(count).unwrap_or(i64::MAX))
                    }),
                Output::Aggregate(function, Some(field_id)) => {
                    let Some(aggregations) = aggregations else {
                        return Value::Null;
                    };
                    let map = match function {
                        Function::Sum => &aggregations.sum,
                        Function::Avg => &aggregations.avg,
                        Function::Min => &aggregations.min,
                        _ => &aggregations.max,
                    };
                    map.get(&field_name(field_id))
                        .cloned()
                        .unwrap_or(Value::Null)
                }
                Output::Aggregate(_, None) => Value::Null,
            })
            .collect()
    }
}

/// A record's value of an attribute as the API shows it: ids as strings, times as RFC 3339.
fn attribute_value(attribute: Attribute, record: &StoredRecord) -> Value {
    match attribute {
        Attribute::Id => Value::Text(record.id.to_string()),
        Attribute::CreatedAt => Value::Text(clock::format_ms(record.created_at)),
        Attribute::UpdatedAt => Value::Text(clock::format_ms(record.updated_at)),
        Attribute::DeletedAt => record
            .deleted_at
            .map_or(Value::Null, |at| Value::Text(clock::format_ms(at))),
        other => other.value_of(record),
    }
}
