//! What each request of a run carries: the bench tables as read from `GET /api/tables/{t}`
//! (how to make a record of each, which field to filter, update and merge on), the record ids
//! each worker knows, and the request an operation becomes.

use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, Zipf};
use serde_json::{json, Map, Value as Json};

use super::keys::{KeyChoice, KeyPicker};
use super::scenario::{Operation, Piece, Scenario, Template};

/// The words bench records are written with and searched for.
pub const WORDS: [&str; 48] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basalt", "cobalt", "dune",
    "ember", "fjord", "glacier", "harbor", "island", "jungle", "kelp", "lagoon", "meadow",
    "nebula", "orchid", "prairie", "quartz", "reef", "savanna", "tundra", "volcano", "willow",
];

/// Records per batch of the `batch` scenario and of the initial fill.
pub const BATCH_SIZE: usize = 1000;
/// Records per upsert of the `upsert` scenario.
pub const UPSERT_SIZE: usize = 100;

/// A request as the client sends it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: hyper::Method,
    /// Path and query, under the target's base path.
    pub path: String,
    pub body: Option<Bytes>,
    /// `text/plain` for a page view (as `navigator.sendBeacon` sends it), else JSON.
    pub plain_text: bool,
    /// A page view's browser and visitor address.
    pub user_agent: Option<&'static str>,
    pub forwarded_for: Option<String>,
}

impl Request {
    fn new(method: hyper::Method, path: String, body: Option<Json>) -> Request {
        Request {
            method,
            path,
            body: body.map(|body| Bytes::from(body.to_string())),
            plain_text: false,
            user_agent: None,
            forwarded_for: None,
        }
    }
}

/// How a field gets a value in a generated record.
#[derive(Debug, Clone, PartialEq)]
enum Maker {
    Words(usize),
    /// A value unique in the run (unique text fields, and the upsert key).
    Unique,
    Integer(i64, i64),
    Decimal(f64, f64),
    Choice(Vec<String>),
    Choices(Vec<String>),
    Checkbox,
    Email,
    Url,
    Phone,
    Date,
    DateTime,
}

/// One bench table: its name and what the scenarios need of its fields.
#[derive(Debug, Clone)]
pub struct BenchTable {
    pub name: String,
    fields: Vec<(String, Maker)>,
    /// `filter=` of the `list` scenario, URL-encoded: an indexed field equal to a value.
    list_filter: Option<String>,
    /// The field updates change, and how.
    update_field: Option<(String, Maker)>,
    /// The unique field upserts merge on.
    upsert_key: Option<String>,
    /// Whether full-text search covers any field.
    searchable: bool,
}

impl BenchTable {
    /// Reads a table as `GET /api/tables/{t}` describes it (`{table:{name, fields, search?}}`).
    pub fn from_description(description: &Json) -> Result<BenchTable, String> {
        let table = description.get("table").unwrap_or(description);
        let name = table["name"]
            .as_str()
            .ok_or("the table description has no name")?
            .to_string();
        let no_fields = Vec::new();
        let described = table["fields"].as_array().unwrap_or(&no_fields);
        let mut fields = Vec::new();
        let mut list_filter = None;
        let mut update_field = None;
        let mut upsert_key = None;
        let mut text_fields = Vec::new();
        for field in described {
            let field_name = field["name"].as_str().unwrap_or_default().to_string();
            let kind = field["type"].as_str().unwrap_or_default();
            let unique = field["unique"].as_bool().unwrap_or(false);
            let required = field["required"].as_bool().unwrap_or(false);
            let options: Vec<String> = field["options"]
                .as_array()
                .map(|options| {
                    options
                        .iter()
                        .filter_map(|option| option.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let bound = |key: &str, default: f64| field[key].as_f64().unwrap_or(default);
            let maker = match kind {
                "single-line-text" | "rich-text" if unique => Maker::Unique,
                "single-line-text" | "rich-text" => Maker::Words(3),
                "long-text" => Maker::Words(20),
                "email" => Maker::Email,
                "url" => Maker::Url,
                "phone-number" => Maker::Phone,
                // Whole-number bounds of a schema fit an i64 (the field type is i64).
                "integer" => Maker::Integer(
                    bound("min", 0.0) as i64,
                    bound("max", 1_000_000.0) as i64,
                ),
                "rating" => Maker::Integer(1, bound("max", 5.0) as i64),
                "decimal" | "currency" => Maker::Decimal(bound("min", 0.0), bound("max", 10_000.0)),
                "percentage" => Maker::Decimal(bound("min", 0.0), bound("max", 100.0)),
                "checkbox" => Maker::Checkbox,
                "date" => Maker::Date,
                "datetime" => Maker::DateTime,
                "single-select" if !options.is_empty() => Maker::Choice(options.clone()),
                "multi-select" if !options.is_empty() => Maker::Choices(options.clone()),
                _ if required => {
                    return Err(format!(
                        "table '{name}': the bench cannot fill the required {kind} field '{field_name}'"
                    ))
                }
                _ => continue,
            };
            if matches!(kind, "single-line-text" | "long-text" | "rich-text") {
                text_fields.push(field_name.clone());
            }
            if unique && upsert_key.is_none() && maker == Maker::Unique {
                upsert_key = Some(field_name.clone());
            }
            let indexed = field["indexed"].as_bool().unwrap_or(false);
            if indexed && list_filter.is_none() {
                list_filter = equality_filter(&field_name, &maker);
            }
            if update_field.is_none()
                && !unique
                && matches!(maker, Maker::Integer(..) | Maker::Decimal(..))
            {
                update_field = Some((field_name.clone(), maker.clone()));
            }
            fields.push((field_name, maker));
        }
        if fields.is_empty() {
            return Err(format!("table '{name}' has no field the bench can fill"));
        }
        if update_field.is_none() {
            update_field = fields
                .iter()
                .find(|(_, maker)| matches!(maker, Maker::Words(_)))
                .cloned();
        }
        let searchable = match table.get("search").and_then(Json::as_array) {
            Some(search) => !search.is_empty(),
            None => !text_fields.is_empty(),
        };
        Ok(BenchTable {
            name,
            fields,
            list_filter,
            update_field,
            upsert_key,
            searchable,
        })
    }

    /// Why this table cannot run `operation`, if it cannot.
    pub fn unsupported(&self, operation: Operation) -> Option<String> {
        let missing = match operation {
            Operation::List if self.list_filter.is_none() => {
                "an indexed field (select, text, number or checkbox)"
            }
            Operation::Update | Operation::ReadModifyWrite if self.update_field.is_none() => {
                "a number or text field to update"
            }
            Operation::Upsert if self.upsert_key.is_none() => "a unique text field to merge on",
            Operation::Search if !self.searchable => "a searchable text field",
            _ => return None,
        };
        Some(format!("table '{}' has no {missing}", self.name))
    }

    /// A new record's fields; `unique` makes its unique fields unique in the run.
    pub fn record(&self, unique: u64, random: &mut SmallRng) -> Json {
        let mut record = Map::new();
        for (name, maker) in &self.fields {
            record.insert(name.clone(), make(maker, unique, random));
        }
        Json::Object(record)
    }
}

/// `name='value'` (URL-encoded) for an indexed field, the value one a generated record can have.
fn equality_filter(name: &str, maker: &Maker) -> Option<String> {
    let value = match maker {
        Maker::Choice(options) => format!("'{}'", options.get(1).or(options.first())?),
        Maker::Checkbox => "true".into(),
        Maker::Integer(low, high) => ((low + high) / 2).to_string(),
        Maker::Words(_) => format!("'{}'", WORDS[0]),
        _ => return None,
    };
    Some(url_encode(&format!("{name}={value}")))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn words(count: usize, random: &mut SmallRng) -> String {
    let mut text = String::new();
    for index in 0..count {
        if index > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[random.gen_range(0..WORDS.len())]);
    }
    text
}

fn make(maker: &Maker, unique: u64, random: &mut SmallRng) -> Json {
    match maker {
        Maker::Words(count) => json!(words(*count, random)),
        Maker::Unique => json!(format!("k{unique}")),
        Maker::Integer(low, high) => json!(random.gen_range(*low..=(*high).max(*low))),
        Maker::Decimal(low, high) => {
            let value: f64 = random.gen_range(*low..=high.max(*low));
            json!((value * 100.0).round() / 100.0)
        }
        Maker::Choice(options) => json!(options[random.gen_range(0..options.len())]),
        Maker::Choices(options) => json!([options[random.gen_range(0..options.len())]]),
        Maker::Checkbox => json!(random.gen_bool(0.5)),
        Maker::Email => json!(format!("bench{unique}@example.com")),
        Maker::Url => json!(format!("https://example.com/{unique}")),
        Maker::Phone => json!(format!("+1555{:07}", unique % 10_000_000)),
        Maker::Date => json!(format!(
            "20{:02}-{:02}-{:02}",
            random.gen_range(10..30),
            random.gen_range(1..=12),
            random.gen_range(1..=28)
        )),
        Maker::DateTime => json!(format!(
            "2026-{:02}-{:02}T{:02}:{:02}:00Z",
            random.gen_range(1..=12),
            random.gen_range(1..=28),
            random.gen_range(0..24),
            random.gen_range(0..60)
        )),
    }
}

/// The record ids of one table a worker may name: those known when the run started (shared by
/// every worker) and those this worker created since, oldest first.
#[derive(Debug, Clone, Default)]
pub struct KeySpace {
    pub known: Arc<Vec<Box<str>>>,
    pub created: Vec<Box<str>>,
}

impl KeySpace {
    pub fn len(&self) -> usize {
        self.known.len() + self.created.len()
    }

    fn get(&self, position: usize) -> Option<&str> {
        match position.checked_sub(self.known.len()) {
            None => self.known.get(position).map(|id| &**id),
            Some(created) => self.created.get(created).map(|id| &**id),
        }
    }
}

/// Everything a run's requests are made from, shared by its workers.
#[derive(Debug)]
pub struct Workload {
    pub scenario: Scenario,
    pub tables: Vec<BenchTable>,
    pub keys: KeyChoice,
}

/// One worker's request maker: its random source, key picker, key spaces and sequence.
#[derive(Debug)]
pub struct Worker {
    pub random: SmallRng,
    picker: KeyPicker,
    pub spaces: Vec<KeySpace>,
    sequence: u64,
    worker_bits: u64,
    pages: Zipf<f64>,
}

/// What a sent request is, for reading its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A 201 stores one record; its id joins the key space of table `.0`.
    Created(usize),
    /// A 201/200 answer's `created` member counts the records stored.
    CreatedCount,
    /// A read whose record a `PATCH` of table `.0` modifies.
    ThenModify(usize),
    /// Nothing to read from the answer.
    Nothing,
}

impl Worker {
    /// Worker `index` of a run, with the run's key spaces. `salt` tells this run's unique
    /// values from other runs' on the same table (each run of a bench has its own).
    pub fn new(
        index: usize,
        seed: u64,
        salt: u64,
        keys: KeyChoice,
        spaces: Vec<KeySpace>,
    ) -> Worker {
        use rand::SeedableRng;
        let index = u64::try_from(index).unwrap_or(u64::MAX);
        Worker {
            random: SmallRng::seed_from_u64(
                seed ^ 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(index + 1),
            ),
            picker: KeyPicker::new(keys),
            spaces,
            sequence: 0,
            worker_bits: (salt & 0xFFFF) << 48 | (index & 0xFFFF) << 32,
            // 200 paths; the constant and n are valid for `Zipf::new` (n ≥ 1, s ≥ 0).
            pages: Zipf::new(200, 1.0).expect("constant parameters are valid"),
        }
    }

    /// A number unique in the bench: the run's salt in the highest 16 bits, this worker's index
    /// in the next 16, its own count below.
    fn next_unique(&mut self) -> u64 {
        self.sequence += 1;
        self.worker_bits | self.sequence
    }

    fn pick_table(&mut self, workload: &Workload) -> usize {
        if workload.tables.len() <= 1 {
            0
        } else {
            self.random.gen_range(0..workload.tables.len())
        }
    }

    fn pick_id(&mut self, table: usize) -> Option<String> {
        let space = self.spaces.get(table)?;
        let position = self.picker.pick(space.len(), &mut self.random)?;
        space.get(position).map(str::to_string)
    }

    /// The request for `operation`, and how to read its answer; `None` when it names a record
    /// and the table has none.
    pub fn request(
        &mut self,
        workload: &Workload,
        operation: Operation,
    ) -> Option<(Request, Expect)> {
        use hyper::Method;
        let index = self.pick_table(workload);
        let table = workload.tables.get(index)?;
        let records = format!("/api/tables/{}/records", table.name);
        let request = match operation {
            Operation::Create => {
                let unique = self.next_unique();
                let body = table.record(unique, &mut self.random);
                return Some((
                    Request::new(Method::POST, records, Some(body)),
                    Expect::Created(index),
                ));
            }
            Operation::Read => {
                let id = self.pick_id(index)?;
                Request::new(Method::GET, format!("{records}/{id}"), None)
            }
            Operation::ReadModifyWrite => {
                let id = self.pick_id(index)?;
                let read = Request::new(Method::GET, format!("{records}/{id}"), None);
                return Some((read, Expect::ThenModify(index)));
            }
            Operation::Update => {
                let id = self.pick_id(index)?;
                let (field, maker) = table.update_field.as_ref()?;
                let value = make(maker, self.next_unique(), &mut self.random);
                Request::new(
                    Method::PATCH,
                    format!("{records}/{id}"),
                    Some(json!({ field: value })),
                )
            }
            Operation::List => Request::new(
                Method::GET,
                format!(
                    "{records}?filter={}&limit=20",
                    table.list_filter.as_deref()?
                ),
                None,
            ),
            Operation::Search => {
                let word = WORDS[self.random.gen_range(0..WORDS.len())];
                Request::new(
                    Method::GET,
                    format!("{records}?search={word}&limit=20"),
                    None,
                )
            }
            Operation::Scan => {
                let id = self.pick_id(index)?;
                let limit = self.random.gen_range(1..=100);
                Request::new(
                    Method::GET,
                    format!("{records}?after={id}&limit={limit}&skipTotal=true"),
                    None,
                )
            }
            Operation::Batch => {
                let batch: Vec<Json> = (0..BATCH_SIZE)
                    .map(|_| {
                        let unique = self.next_unique();
                        table.record(unique, &mut self.random)
                    })
                    .collect();
                return Some((
                    Request::new(
                        Method::POST,
                        format!("{records}/batch"),
                        Some(json!({ "records": batch })),
                    ),
                    Expect::CreatedCount,
                ));
            }
            Operation::Upsert => {
                let key = table.upsert_key.as_ref()?;
                let batch: Vec<Json> = (0..UPSERT_SIZE)
                    .map(|_| {
                        // About half the keys were written before by this worker.
                        let unique = if self.sequence > 0 && self.random.gen_bool(0.5) {
                            self.worker_bits | self.random.gen_range(1..=self.sequence)
                        } else {
                            self.next_unique()
                        };
                        let mut record = table.record(unique, &mut self.random);
                        record[key.as_str()] = json!(format!("k{unique}"));
                        record
                    })
                    .collect();
                return Some((
                    Request::new(
                        Method::POST,
                        format!("{records}/upsert"),
                        Some(json!({ "records": batch, "fieldsToMergeOn": [key] })),
                    ),
                    Expect::CreatedCount,
                ));
            }
            Operation::Collect => self.page_view(),
            Operation::Template(position) => {
                let template = workload.scenario.templates.get(position)?;
                return self.fill(template, workload, index);
            }
        };
        Some((request, Expect::Nothing))
    }

    /// The `PATCH` of a read-modify-write of table `table`, from the record the read
    /// returned: the field one higher (or a new value), with the `updatedAt` read.
    pub fn modify(&mut self, workload: &Workload, table: usize, read: &Json) -> Option<Request> {
        let bench_table = workload.tables.get(table)?;
        let id = read["id"].as_str()?;
        let (field, maker) = bench_table.update_field.as_ref()?;
        let value = match (maker, read["fields"][field.as_str()].as_i64()) {
            (Maker::Integer(_, high), Some(current)) if current < *high => json!(current + 1),
            _ => make(maker, self.next_unique(), &mut self.random),
        };
        Some(Request::new(
            hyper::Method::PATCH,
            format!("/api/tables/{}/records/{id}", bench_table.name),
            Some(json!({ field: value, "updatedAt": read["updatedAt"] })),
        ))
    }

    /// A page view of one of many visitors: a zipfian spread over 200 paths, a referrer mix
    /// with a third direct, ten browsers, and the visitor's address from a pool of a million.
    fn page_view(&mut self) -> Request {
        let page = self.pages.sample(&mut self.random) as u64;
        let referrer = REFERRERS[self.random.gen_range(0..REFERRERS.len())];
        const WIDTHS: [u32; 5] = [1920, 1440, 390, 412, 1280];
        const HEIGHTS: [u32; 5] = [1080, 900, 844, 915, 720];
        let screen = self.random.gen_range(0..WIDTHS.len());
        let mut view = json!({
            "p": format!("/{}/{page}", WORDS[(page as usize) % WORDS.len()]),
            "t": format!("Page {page}"),
            "sw": WIDTHS[screen],
            "sh": HEIGHTS[screen],
        });
        if !referrer.is_empty() {
            view["r"] = json!(referrer);
        }
        if self.random.gen_bool(0.1) {
            view["us"] = json!("newsletter");
            view["um"] = json!("email");
            view["uc"] = json!(format!("week{}", self.random.gen_range(1..=52)));
        }
        let visitor: u32 = self.random.gen_range(0..1_000_000);
        let [_, a, b, c] = visitor.to_be_bytes();
        let mut request = Request::new(
            hyper::Method::POST,
            "/api/analytics/collect".into(),
            Some(view),
        );
        request.plain_text = true;
        request.user_agent = Some(USER_AGENTS[self.random.gen_range(0..USER_AGENTS.len())]);
        request.forwarded_for = Some(format!("10.{a}.{b}.{}", c.max(1)));
        request
    }

    /// A scenario file's template with its variables filled in.
    fn fill(
        &mut self,
        template: &Template,
        workload: &Workload,
        table: usize,
    ) -> Option<(Request, Expect)> {
        let path = self.fill_pieces(&template.path, workload, table)?;
        let body = match &template.body {
            Some(pieces) => Some(Bytes::from(self.fill_pieces(pieces, workload, table)?)),
            None => None,
        };
        let method = hyper::Method::from_bytes(template.method.as_bytes()).ok()?;
        let expect = if template.creates_record() {
            Expect::Created(table)
        } else {
            Expect::Nothing
        };
        Some((
            Request {
                method,
                path,
                body,
                plain_text: false,
                user_agent: None,
                forwarded_for: None,
            },
            expect,
        ))
    }

    fn fill_pieces(
        &mut self,
        pieces: &[Piece],
        workload: &Workload,
        table: usize,
    ) -> Option<String> {
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(literal) => text.push_str(literal),
                Piece::Table => text.push_str(&workload.tables.get(table)?.name),
                Piece::Id => text.push_str(&self.pick_id(table)?),
                Piece::Integer(low, high) => {
                    text.push_str(&self.random.gen_range(*low..=*high).to_string())
                }
                Piece::Choice(words) => {
                    text.push_str(&words[self.random.gen_range(0..words.len())])
                }
                Piece::Word => text.push_str(WORDS[self.random.gen_range(0..WORDS.len())]),
                Piece::Sequence => text.push_str(&self.next_unique().to_string()),
            }
        }
        Some(text)
    }

    /// Adds a record this worker created to table `table`'s key space.
    pub fn created(&mut self, table: usize, id: String) {
        if let Some(space) = self.spaces.get_mut(table) {
            space.created.push(id.into_boxed_str());
        }
    }
}

const REFERRERS: [&str; 9] = [
    "",
    "",
    "",
    "https://www.google.com/",
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://news.ycombinator.com/",
    "https://www.reddit.com/r/selfhosted/",
    "https://t.co/x1y2z3",
];

const USER_AGENTS: [&str; 10] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
];

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn bench_table() -> BenchTable {
        BenchTable::from_description(&json!({"table": {"name": "bench", "search": ["title"], "fields": [
            {"name": "title", "type": "single-line-text", "required": true},
            {"name": "status", "type": "single-select", "options": ["todo", "doing", "done"], "indexed": true},
            {"name": "score", "type": "integer", "min": 0, "max": 100},
            {"name": "key", "type": "single-line-text", "unique": true},
            {"name": "owner", "type": "relationship", "relatedTable": "people"},
        ]}}))
        .expect("a bench table")
    }

    #[test]
    fn a_table_description_gives_the_filter_update_and_merge_fields() {
        let table = bench_table();
        assert_eq!(table.list_filter.as_deref(), Some("status%3D%27doing%27"));
        assert_eq!(
            table.update_field.as_ref().map(|(name, _)| name.as_str()),
            Some("score")
        );
        assert_eq!(table.upsert_key.as_deref(), Some("key"));
        let record = table.record(7, &mut SmallRng::seed_from_u64(1));
        assert_eq!(record["key"], "k7");
        assert!(
            record.get("owner").is_none(),
            "optional links are left empty"
        );
        let score = record["score"].as_i64().expect("a number");
        assert!((0..=100).contains(&score));
        for operation in [
            Operation::List,
            Operation::Update,
            Operation::Upsert,
            Operation::Search,
        ] {
            assert_eq!(table.unsupported(operation), None);
        }
        let bare = BenchTable::from_description(&json!({"name": "notes", "search": [], "fields": [
            {"name": "done", "type": "checkbox"}]}))
        .expect("a table");
        assert!(bare
            .unsupported(Operation::Upsert)
            .expect("no key")
            .contains("unique text field"));
        assert!(bare.unsupported(Operation::Search).is_some());
        assert!(bare.unsupported(Operation::List).is_some());
        let required_link = BenchTable::from_description(&json!({"name": "t", "fields": [
            {"name": "owner", "type": "relationship", "required": true}]}));
        assert!(required_link
            .expect_err("unfillable")
            .contains("required relationship field 'owner'"));
    }

    #[test]
    fn requests_name_known_records_and_templates_are_filled() {
        let scenario = super::super::scenario::parse_scenario_file(
            "[[request]]\nmethod = \"POST\"\npath = \"/api/tables/{table}/records\"\nbody = '{{\"title\": \"{word} {seq}\", \"score\": {int:3:3}}}'\n",
        )
        .expect("valid");
        let workload = Workload {
            scenario,
            tables: vec![bench_table()],
            keys: KeyChoice::Uniform,
        };
        let spaces = vec![KeySpace {
            known: Arc::new(vec!["41".into(), "42".into()]),
            created: Vec::new(),
        }];
        let mut worker = Worker::new(0, 9, 1, KeyChoice::Uniform, spaces);
        let (read, expect) = worker.request(&workload, Operation::Read).expect("a read");
        assert!(
            read.path == "/api/tables/bench/records/41"
                || read.path == "/api/tables/bench/records/42"
        );
        assert_eq!(expect, Expect::Nothing);
        let (create, expect) = worker
            .request(&workload, Operation::Template(0))
            .expect("a create");
        assert_eq!(expect, Expect::Created(0));
        assert_eq!(create.method, hyper::Method::POST);
        let body: Json =
            serde_json::from_slice(create.body.as_deref().expect("a body")).expect("JSON");
        assert_eq!(body["score"], 3);
        assert!(body["title"]
            .as_str()
            .expect("text")
            .ends_with(&format!(" {}", (1u64 << 48) | 1)));
        worker.created(0, "43".into());
        assert_eq!(worker.spaces[0].len(), 3);
        let (collect, _) = worker
            .request(&workload, Operation::Collect)
            .expect("a page view");
        assert!(
            collect.plain_text && collect.user_agent.is_some() && collect.forwarded_for.is_some()
        );
        let mut empty = Worker::new(1, 9, 1, KeyChoice::Uniform, vec![KeySpace::default()]);
        assert!(empty.request(&workload, Operation::Read).is_none());
    }
}
