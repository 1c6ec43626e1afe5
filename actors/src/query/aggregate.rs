//! `aggregate=` (count, sum, avg, min, max) and `groupBy=` over the whole filtered set: the
//! request spelling (`count,sum:budget` or `{"count":true,"sum":["budget"]}`) and the
//! accumulators the executor feeds with every matching record.

use std::collections::BTreeMap;

use tabula_storage::{StoredRecord, TableSchema, Value};

use crate::error::{DomainError, DomainResult};
use crate::query::filter::compare_values;
use crate::query::params::JsonParser;

/// What to compute, by field id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AggregateSpec {
    pub count: bool,
    pub sum: Vec<u32>,
    pub avg: Vec<u32>,
    pub min: Vec<u32>,
    pub max: Vec<u32>,
}

/// Computed aggregations, keyed by field name, ready to render as
/// `{count:3, sum:{budget:45000}, avg:{priority:4}}` (empty maps are for functions not asked).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Aggregations {
    pub count: Option<u64>,
    pub sum: BTreeMap<String, Value>,
    pub avg: BTreeMap<String, Value>,
    pub min: BTreeMap<String, Value>,
    pub max: BTreeMap<String, Value>,
}

/// One `groupBy` group: the value (null for records without one), how many records hold it,
/// and the aggregations over them when `aggregate` was asked too.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: Value,
    pub count: u64,
    pub aggregations: Option<Aggregations>,
}

const PARAMETER: &str = "aggregate";

fn bad(message: impl Into<String>) -> DomainError {
    DomainError::bad_request(PARAMETER, message)
}

fn resolve_field(schema: &TableSchema, function: &str, name: &str) -> DomainResult<u32> {
    let field = schema
        .field_by_name(name.trim())
        .ok_or_else(|| bad(format!("unknown field: {}", name.trim())))?;
    if matches!(function, "sum" | "avg") && !field.field_type.is_numeric() {
        return Err(bad(format!(
            "{function} needs a number field, '{}' is {}",
            field.name, field.field_type
        )));
    }
    Ok(field.id)
}

fn add(
    spec: &mut AggregateSpec,
    schema: &TableSchema,
    function: &str,
    field: Option<&str>,
) -> DomainResult<()> {
    match (function, field) {
        ("count", None) => spec.count = true,
        ("count", Some(_)) => return Err(bad("count takes no field")),
        (function @ ("sum" | "avg" | "min" | "max"), Some(name)) => {
            let field_id = resolve_field(schema, function, name)?;
            let list = match function {
                "sum" => &mut spec.sum,
                "avg" => &mut spec.avg,
                "min" => &mut spec.min,
                _ => &mut spec.max,
            };
            if !list.contains(&field_id) {
                list.push(field_id);
            }
        }
        ("sum" | "avg" | "min" | "max", None) => {
            return Err(bad(format!(
                "{function} needs a field, e.g. {function}:budget"
            )))
        }
        (other, _) => {
            return Err(bad(format!(
                "unknown aggregate '{other}' (expected count, sum, avg, min or max)"
            )))
        }
    }
    Ok(())
}

/// Parses `count,sum:budget,avg:priority,min:x,max:x` or the JSON object form.
pub fn parse_aggregate(
    schema: &TableSchema,
    text: &str,
    parse_json: JsonParser,
) -> DomainResult<AggregateSpec> {
    let mut spec = AggregateSpec::default();
    let text = text.trim();
    if text.starts_with('{') {
        let Value::Map(entries) =
            parse_json(text).map_err(|message| bad(format!("invalid JSON: {message}")))?
        else {
            return Err(bad("the JSON form of aggregate must be an object"));
        };
        for (function, argument) in &entries {
            match argument {
                Value::Bool(true) if function == "count" => add(&mut spec, schema, function, None)?,
                Value::Bool(false) | Value::Null => {}
                Value::Text(name) => add(&mut spec, schema, function, Some(name))?,
                Value::List(names) => {
                    for name in names {
                        let Value::Text(name) = name else {
                            return Err(bad(format!("{function} expects field names")));
                        };
                        add(&mut spec, schema, function, Some(name))?;
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "{function} expects a field name or a list of them"
                    )))
                }
            }
        }
    } else {
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            match part.split_once(':') {
                Some((function, field)) => add(&mut spec, schema, function.trim(), Some(field))?,
                None => add(&mut spec, schema, part, None)?,
            }
        }
    }
    if spec == AggregateSpec::default() {
        return Err(bad("aggregate needs at least one function"));
    }
    Ok(spec)
}

/// A running sum: integers exactly, decimals as f64.
#[derive(Debug, Clone, Default)]
struct Sum {
    integers: i128,
    decimals: f64,
    has_decimals: bool,
    values: u64,
}

impl Sum {
    fn add(&mut self, value: &Value) {
        match value {
            Value::Int(number) => {
                self.integers = self.integers.saturating_add(i128::from(*number));
                self.values += 1;
            }
            Value::Float(number) => {
                self.decimals += number;
                self.has_decimals = true;
                self.values += 1;
            }
            _ => {}
        }
    }

    fn total(&self) -> Value {
        if !self.has_decimals {
            if let Ok(total) = i64::try_from(self.integers) {
                return Value::Int(total);
            }
        }
        // The integer part beyond f64 precision is rounded, as any decimal total is.
        whole_number(self.integers as f64 + self.decimals)
    }

    fn average(&self) -> Value {
        if self.values == 0 {
            return Value::Null;
        }
        // Rounded like any decimal average; the count of records is far below 2^53 (exact).
        let total = self.integers as f64 + self.decimals;
        whole_number(total / self.values as f64)
    }
}

/// An integral f64 as an integer (so `4.0` renders as `4`), else the f64.
fn whole_number(number: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if number.fract() == 0.0 && number.abs() < EXACT {
        // Integral and below 2^53 in magnitude: the conversion is exact.
        Value::Int(number as i64)
    } else {
        Value::Float(number)
    }
}

/// The aggregations over a set of records, fed one record at a time.
#[derive(Debug, Clone)]
pub struct Accumulator {
    count: u64,
    sums: Vec<Sum>,
    averages: Vec<Sum>,
    minimums: Vec<Value>,
    maximums: Vec<Value>,
}

impl Accumulator {
    pub fn new(spec: &AggregateSpec) -> Accumulator {
        Accumulator {
            count: 0,
            sums: vec![Sum::default(); spec.sum.len()],
            averages: vec![Sum::default(); spec.avg.len()],
            minimums: vec![Value::Null; spec.min.len()],
            maximums: vec![Value::Null; spec.max.len()],
        }
    }

    pub fn add(&mut self, spec: &AggregateSpec, record: &StoredRecord) {
        self.count += 1;
        for (sum, field_id) in self.sums.iter_mut().zip(&spec.sum) {
            sum.add(record.value(*field_id));
        }
        for (average, field_id) in self.averages.iter_mut().zip(&spec.avg) {
            average.add(record.value(*field_id));
        }
        for (minimum, field_id) in self.minimums.iter_mut().zip(&spec.min) {
            let value = record.value(*field_id);
            if !value.is_null()
                && (minimum.is_null() || compare_values(value, minimum) == std::cmp::Ordering::Less)
            {
                *minimum = value.clone();
            }
        }
        for (maximum, field_id) in self.maximums.iter_mut().zip(&spec.max) {
            let value = record.value(*field_id);
            if !value.is_null() && compare_values(value, maximum) == std::cmp::Ordering::Greater {
                *maximum = value.clone();
            }
        }
    }

    pub fn finish(&self, spec: &AggregateSpec, schema: &TableSchema) -> Aggregations {
        let name = |field_id: &u32| {
            schema
                .field_by_id(*field_id)
                .map_or_else(|| field_id.to_string(), |field| field.name.clone())
        };
        Aggregations {
            count: spec.count.then_some(self.count),
            sum: spec
                .sum
                .iter()
                .map(name)
                .zip(self.sums.iter().map(Sum::total))
                .collect(),
            avg: spec
                .avg
                .iter()
                .map(name)
                .zip(self.averages.iter().map(Sum::average))
                .collect(),
            min: spec
                .min
                .iter()
                .map(name)
                .zip(self.minimums.iter().cloned())
                .collect(),
            max: spec
                .max
                .iter()
                .map(name)
                .zip(self.maximums.iter().cloned())
                .collect(),
        }
    }
}

/// `groupBy` buckets in value order, each with its own accumulator.
#[derive(Debug)]
pub struct Grouper {
    field_id: u32,
    groups: BTreeMap<Vec<u8>, (Value, Accumulator)>,
    empty_spec: AggregateSpec,
}

impl Grouper {
    pub fn new(field_id: u32) -> Grouper {
        Grouper {
            field_id,
            groups: BTreeMap::new(),
            empty_spec: AggregateSpec::default(),
        }
    }

    /// Counts a record in its group; a multi-select value counts in the group of each element.
    pub fn add(&mut self, spec: Option<&AggregateSpec>, record: &StoredRecord) {
        let spec = spec.unwrap_or(&self.empty_spec);
        let value = record.value(self.field_id);
        let names: Vec<&Value> = match value {
            Value::List(items) if !items.is_empty() => items.iter().collect(),
            Value::List(_) => vec![&Value::Null],
            single => vec![single],
        };
        for name in names {
            let mut key = Vec::new();
            tabula_storage::keys::encode_index_value(name, &mut key);
            self.groups
                .entry(key)
                .or_insert_with(|| (name.clone(), Accumulator::new(spec)))
                .1
                .add(spec, record);
        }
    }

    pub fn finish(&self, spec: Option<&AggregateSpec>, schema: &TableSchema) -> Vec<Group> {
        self.groups
            .values()
            .map(|(name, accumulator)| Group {
                name: name.clone(),
                count: accumulator.count,
                aggregations: spec.map(|spec| accumulator.finish(spec, schema)),
            })
            .collect()
    }
}
