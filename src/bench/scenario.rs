//! The scenarios of `tabula bench`: the named built-in ones and `mixed`, read from a scenario
//! file (TOML: weighted request templates with variables, like pgbench's `-f file@weight`).

use std::path::Path;

use rand::Rng;
use serde::Deserialize;

use super::keys::KeyChoice;

/// What one request of a scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /records`: one durable create.
    Create,
    /// `GET /records/{id}`.
    Read,
    /// `PATCH /records/{id}` of one field.
    Update,
    /// `GET /records/{id}` then `PATCH` with its `updatedAt` (optimistic concurrency; a 409
    /// when another connection changed it in between), measured as one operation.
    ReadModifyWrite,
    /// `GET /records?filter=<indexed field>='<value>'&limit=20`, with the total.
    List,
    /// `GET /records?search=<word>&limit=20`.
    Search,
    /// `GET /records?after=<id>&limit=<1..100>&skipTotal=true`: a short keyset scan.
    Scan,
    /// `POST /records/batch` of 1000 records.
    Batch,
    /// `POST /records/upsert` of 100 records merged on a unique field, about half new.
    Upsert,
    /// `POST /api/analytics/collect`: a page view.
    Collect,
    /// The scenario file's request template at this position.
    Template(usize),
}

impl Operation {
    /// Whether this operation can store records (the count check after a run).
    pub fn writes_records(&self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Batch | Operation::Upsert | Operation::Template(_)
        )
    }

    /// Whether this operation needs existing records.
    pub fn needs_records(&self) -> bool {
        matches!(
            self,
            Operation::Read | Operation::Update | Operation::ReadModifyWrite | Operation::Scan
        )
    }
}

/// A scenario: its name and its weighted operations.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub mix: Vec<(Operation, u32)>,
    /// The key distribution when `--keys` does not say.
    pub default_keys: KeyChoice,
    /// The request templates of a scenario file.
    pub templates: Vec<Template>,
}

/// The built-in scenarios, in the order `tabula bench` runs them when none is named.
pub const BUILT_IN: [(&str, &str); 15] = [
    ("create", "durable single creates"),
    ("read", "get by id"),
    ("update", "one-field updates by id"),
    ("ycsb-a", "YCSB A: 50 % reads, 50 % updates (zipfian)"),
    ("ycsb-b", "YCSB B: 95 % reads, 5 % updates (zipfian)"),
    ("ycsb-c", "YCSB C: reads only (zipfian)"),
    (
        "ycsb-d",
        "YCSB D: 95 % reads of the latest records, 5 % inserts",
    ),
    (
        "ycsb-e",
        "YCSB E: 95 % short keyset scans, 5 % inserts (zipfian)",
    ),
    (
        "ycsb-f",
        "YCSB F: 50 % reads, 50 % read-modify-writes with updatedAt (zipfian)",
    ),
    (
        "list",
        "indexed equality filter, first page of 20 with the total",
    ),
    ("search", "full-text search, first page of 20"),
    ("batch", "atomic batches of 1000 creates"),
    ("upsert", "upserts of 100 records on a unique field"),
    (
        "collect",
        "the analytics collector: page views of many visitors",
    ),
    ("mixed", "the weighted requests of a scenario file (--file)"),
];

/// The scenarios run when none is named.
pub const DEFAULT_SCENARIOS: [&str; 4] = ["create", "read", "list", "collect"];

/// The built-in scenario `name`, `None` for an unknown name or `mixed` (read with
/// [`read_scenario_file`]).
pub fn built_in(name: &str) -> Option<Scenario> {
    use Operation::*;
    let (mix, keys): (Vec<(Operation, u32)>, KeyChoice) = match name {
        "create" => (vec![(Create, 1)], KeyChoice::Uniform),
        "read" => (vec![(Read, 1)], KeyChoice::Uniform),
        "update" => (vec![(Update, 1)], KeyChoice::Uniform),
        "ycsb-a" => (vec![(Read, 50), (Update, 50)], KeyChoice::Zipfian),
        "ycsb-b" => (vec![(Read, 95), (Update, 5)], KeyChoice::Zipfian),
        "ycsb-c" => (vec![(Read, 100)], KeyChoice::Zipfian),
        "ycsb-d" => (vec![(Read, 95), (Create, 5)], KeyChoice::Latest),
        "ycsb-e" => (vec![(Scan, 95), (Create, 5)], KeyChoice::Zipfian),
        "ycsb-f" => (vec![(Read, 50), (ReadModifyWrite, 50)], KeyChoice::Zipfian),
        "list" => (vec![(List, 1)], KeyChoice::Uniform),
        "search" => (vec![(Search, 1)], KeyChoice::Uniform),
        "batch" => (vec![(Batch, 1)], KeyChoice::Uniform),
        "upsert" => (vec![(Upsert, 1)], KeyChoice::Uniform),
        "collect" => (vec![(Collect, 1)], KeyChoice::Uniform),
        _ => return None,
    };
    let description = BUILT_IN
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, description)| description.to_string())
        .unwrap_or_default();
    Some(Scenario {
        name: name.to_string(),
        description,
        mix,
        default_keys: keys,
        templates: Vec::new(),
    })
}

impl Scenario {
    /// Draws the next operation by weight.
    pub fn pick(&self, random: &mut impl Rng) -> Operation {
        let total: u32 = self.mix.iter().map(|(_, weight)| weight).sum();
        let mut draw = random.gen_range(0..total.max(1));
        for (operation, weight) in &self.mix {
            if draw < *weight {
                return *operation;
            }
            draw -= weight;
        }
        // The draw is below the sum of the weights, so the loop returned; a scenario always
        // has at least one operation (checked when it is built).
        self.mix
            .first()
            .map(|(operation, _)| *operation)
            .unwrap_or(Operation::Read)
    }

    /// Whether a run of this scenario can store records.
    pub fn writes_records(&self) -> bool {
        self.mix.iter().any(|(operation, _)| match operation {
            Operation::Template(index) => self
                .templates
                .get(*index)
                .is_some_and(|template| template.creates_record()),
            other => other.writes_records(),
        })
    }

    /// Whether this scenario needs records to exist before it runs.
    pub fn needs_records(&self) -> bool {
        self.mix.iter().any(|(operation, _)| match operation {
            Operation::Template(index) => self
                .templates
                .get(*index)
                .is_some_and(|template| template.names_a_record()),
            other => other.needs_records(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario files

/// A scenario file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    /// A description shown in the report.
    description: Option<String>,
    /// `uniform`, `zipfian` or `latest` when `--keys` does not say.
    keys: Option<String>,
    #[serde(default)]
    request: Vec<RequestFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    name: Option<String>,
    #[serde(default = "one")]
    weight: u32,
    method: String,
    path: String,
    body: Option<String>,
}

fn one() -> u32 {
    1
}

/// One request template of a scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    pub method: String,
    pub path: Vec<Piece>,
    pub body: Option<Vec<Piece>>,
}

/// A piece of a template: literal text or a variable filled per request.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// `{table}`: the bench table (one of `--tables`, at random).
    Table,
    /// `{id}`: an existing record of that table, chosen with `--keys`.
    Id,
    /// `{int:A:B}`: a whole number from A to B.
    Integer(i64, i64),
    /// `{choice:a|b|c}`: one of the words.
    Choice(Vec<String>),
    /// `{word}`: a random lowercase word.
    Word,
    /// `{seq}`: a number unique in the run.
    Sequence,
}

impl Template {
    /// Whether a 201 answer to this template stores one record (a POST to `…/records`).
    pub fn creates_record(&self) -> bool {
        self.method == "POST"
            && matches!(self.path.last(), Some(Piece::Text(text)) if text.ends_with("/records"))
    }

    /// Whether this template names an existing record.
    pub fn names_a_record(&self) -> bool {
        self.path.contains(&Piece::Id)
            || self
                .body
                .as_ref()
                .is_some_and(|body| body.contains(&Piece::Id))
    }
}

/// Reads the scenario file at `path` into the `mixed` scenario.
pub fn read_scenario_file(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the scenario file {}: {error}", path.display()))?;
    parse_scenario_file(&text).map_err(|error| format!("{}: {error}", path.display()))
}

/// Parses a scenario file's text.
pub fn parse_scenario_file(text: &str) -> Result<Scenario, String> {
    let file: ScenarioFile = toml::from_str(text).map_err(|error| error.message().to_string())?;
    if file.request.is_empty() {
        return Err("no [[request]] (a scenario file has at least one)".into());
    }
    let default_keys = match file.keys.as_deref() {
        Some(keys) => keys.parse().map_err(|error| format!("keys: {error}"))?,
        None => KeyChoice::Uniform,
    };
    let mut templates = Vec::new();
    let mut mix = Vec::new();
    for (index, request) in file.request.iter().enumerate() {
        let at = |what: &str| format!("request {} ({what})", index + 1);
        let method = request.method.to_ascii_uppercase();
        if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method.as_str()) {
            return Err(format!(
                "{}: method '{}' is not GET, POST, PATCH, PUT or DELETE",
                at("method"),
                request.method
            ));
        }
        if request.weight == 0 {
            return Err(format!("{}: a weight is at least 1", at("weight")));
        }
        if !request.path.starts_with('/') {
            return Err(format!("{}: a path starts with /", at("path")));
        }
        let path =
            parse_template(&request.path).map_err(|error| format!("{}: {error}", at("path")))?;
        let body = request
            .body
            .as_deref()
            .map(parse_template)
            .transpose()
            .map_err(|error| format!("{}: {error}", at("body")))?;
        templates.push(Template {
            name: request
                .name
                .clone()
                .unwrap_or_else(|| format!("{method} {}", request.path)),
            method,
            path,
            body,
        });
        mix.push((Operation::Template(index), request.weight));
    }
    Ok(Scenario {
        name: "mixed".into(),
        description: file
            .description
            .unwrap_or_else(|| "the weighted requests of a scenario file".into()),
        mix,
        default_keys,
        templates,
    })
}

/// Splits a template into text and variables; `{{` and `}}` are literal braces.
fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("'{{{name}' is not closed with }}")),
                    }
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(parse_variable(&name)?);
            }
            '}' => return Err("a lone '}' (write '}}' for a brace)".into()),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn parse_variable(name: &str) -> Result<Piece, String> {
    let unknown =
        || format!("unknown variable '{{{name}}}' (table, id, word, seq, int:A:B, choice:a|b)");
    match name {
        "table" => return Ok(Piece::Table),
        "id" => return Ok(Piece::Id),
        "word" => return Ok(Piece::Word),
        "seq" => return Ok(Piece::Sequence),
        _ => {}
    }
    if let Some(range) = name.strip_prefix("int:") {
        let (low, high) = range.split_once(':').ok_or_else(unknown)?;
        let bound = |text: &str| {
            text.trim()
                .parse::<i64>()
                .map_err(|_| format!("'{{{name}}}': '{text}' is not a whole number"))
        };
        let (low, high) = (bound(low)?, bound(high)?);
        if low > high {
            return Err(format!("'{{{name}}}': {low} is above {high}"));
        }
        return Ok(Piece::Integer(low, high));
    }
    if let Some(words) = name.strip_prefix("choice:") {
        let words: Vec<String> = words.split('|').map(str::to_string).collect();
        if words.iter().any(String::is_empty) {
            return Err(format!("'{{{name}}}': an empty choice"));
        }
        return Ok(Piece::Choice(words));
    }
    Err(unknown())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn every_built_in_scenario_is_described_and_draws_by_weight() {
        for (name, description) in BUILT_IN {
            if name == "mixed" {
                assert!(built_in(name).is_none());
                continue;
            }
            let scenario = built_in(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(scenario.description, description);
        }
        let scenario = built_in("ycsb-b").expect("built in");
        let mut random = SmallRng::seed_from_u64(5);
        let reads = (0..10_000)
            .filter(|_| scenario.pick(&mut random) == Operation::Read)
            .count();
        assert!((9_400..9_600).contains(&reads), "{reads}");
        assert!(scenario.needs_records() && !scenario.writes_records());
        let ycsb_d = built_in("ycsb-d").expect("built in");
        assert!(ycsb_d.needs_records() && ycsb_d.writes_records());
        assert!(!built_in("read").expect("built in").writes_records());
        assert!(!built_in("collect").expect("built in").needs_records());
    }

    #[test]
    fn a_scenario_file_reads_weighted_templates_with_variables() {
        let scenario = parse_scenario_file(
            r#"
            description = "reads and creates"
            keys = "zipfian"
            [[request]]
            name = "read"
            weight = 80
            method = "get"
            path = "/api/tables/{table}/records/{id}"
            [[request]]
            weight = 20
            method = "POST"
            path = "/api/tables/{table}/records"
            body = '{{"title": "t{seq} {word}", "priority": {int:1:5}, "status": "{choice:todo|done}"}}'
            "#,
        )
        .expect("valid");
        assert_eq!(scenario.name, "mixed");
        assert_eq!(scenario.description, "reads and creates");
        assert_eq!(scenario.default_keys, KeyChoice::Zipfian);
        assert_eq!(
            scenario.mix,
            vec![(Operation::Template(0), 80), (Operation::Template(1), 20)]
        );
        let read = &scenario.templates[0];
        assert_eq!(read.method, "GET");
        assert_eq!(
            read.path,
            vec![
                Piece::Text("/api/tables/".into()),
                Piece::Table,
                Piece::Text("/records/".into()),
                Piece::Id
            ]
        );
        assert!(read.names_a_record() && !read.creates_record());
        let create = &scenario.templates[1];
        assert_eq!(create.name, "POST /api/tables/{table}/records");
        assert!(create.creates_record());
        assert_eq!(
            create.body.as_deref(),
            Some(
                &[
                    Piece::Text("{\"title\": \"t".into()),
                    Piece::Sequence,
                    Piece::Text(" ".into()),
                    Piece::Word,
                    Piece::Text("\", \"priority\": ".into()),
                    Piece::Integer(1, 5),
                    Piece::Text(", \"status\": \"".into()),
                    Piece::Choice(vec!["todo".into(), "done".into()]),
                    Piece::Text("\"}".into()),
                ][..]
            )
        );
        assert!(scenario.needs_records() && scenario.writes_records());
    }

    #[test]
    fn a_bad_scenario_file_is_refused_with_where_and_why() {
        let request = |fields: &str| format!("[[request]]\n{fields}\n");
        for (text, expected) in [
            (String::new(), "no [[request]]"),
            (request("method = \"GET\""), "missing field `path`"),
            (
                request("method = \"GET\"\npath = \"/x\"\ncolour = 1"),
                "unknown field `colour`",
            ),
            (
                request("method = \"FETCH\"\npath = \"/x\""),
                "request 1 (method): method 'FETCH'",
            ),
            (
                request("method = \"GET\"\npath = \"x\""),
                "request 1 (path): a path starts with /",
            ),
            (
                request("method = \"GET\"\npath = \"/x\"\nweight = 0"),
                "a weight is at least 1",
            ),
            (
                request("method = \"GET\"\npath = \"/{nope}\""),
                "unknown variable '{nope}'",
            ),
            (
                request("method = \"GET\"\npath = \"/{id\""),
                "is not closed",
            ),
            (request("method = \"GET\"\npath = \"/a}\""), "a lone '}'"),
            (
                request("method = \"GET\"\npath = \"/{int:9:1}\""),
                "9 is above 1",
            ),
            (
                request("method = \"GET\"\npath = \"/{int:a:1}\""),
                "'a' is not a whole number",
            ),
            (
                request("method = \"GET\"\npath = \"/{choice:a||b}\""),
                "an empty choice",
            ),
            (
                format!(
                    "keys = \"pareto\"\n{}",
                    request("method = \"GET\"\npath = \"/x\"")
                ),
                "keys: unknown key distribution",
            ),
            (
                request("method = \"POST\"\npath = \"/x\"\nbody = \"{{\"")
                    + &request("method = \"GET\"\npath = \"/{seq\""),
                "request 2 (path)",
            ),
        ] {
            let error = parse_scenario_file(&text).expect_err(&text);
            assert!(error.contains(expected), "{text}\n→ {error}");
        }
    }
}
