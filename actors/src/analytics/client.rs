//! What the collect path derives from a request before the event reaches the aggregator: the
//! client (device type, browser, OS) from the User-Agent through a bounded cache, the referrer's
//! domain, the campaign, the normalised path, and the `excluded_paths` globs.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use rustc_hash::FxHashMap;

/// Distinct User-Agent strings whose classification is cached; a full cache is emptied at once
/// (simple, bounded, and the common User-Agents come straight back).
pub const USER_AGENT_CACHE_LIMIT: usize = 10_000;
/// User-Agents are classified (and cached) on at most this many bytes.
const USER_AGENT_MAX_BYTES: usize = 512;
/// Longest path, referrer domain or UTM value kept (in bytes, cut at a character boundary).
pub const VALUE_MAX_BYTES: usize = 1024;
/// Separates the parts of a composite row value (`device|browser|os`, `source|medium|campaign`).
pub const SEPARATOR: char = '\u{1f}';

/// User-Agent → the id of its class `device␟browser␟os` in [`ClientClasses`], cached per
/// distinct User-Agent.
pub struct ClientClassifier {
    parser: woothee::parser::Parser,
    cache: DashMap<Box<str>, u32, rustc_hash::FxBuildHasher>,
    classes: ClientClasses,
}

impl Default for ClientClassifier {
    fn default() -> Self {
        ClientClassifier {
            parser: woothee::parser::Parser::new(),
            cache: DashMap::with_hasher(rustc_hash::FxBuildHasher),
            classes: ClientClasses::default(),
        }
    }
}

impl ClientClassifier {
    /// The class id of `user_agent` (its row value: [`ClientClasses::name`]).
    pub fn classify(&self, user_agent: &str) -> u32 {
        let user_agent = truncate(user_agent, USER_AGENT_MAX_BYTES);
        if let Some(hit) = self.cache.get(user_agent) {
            return *hit.value();
        }
        let client = Client::parse(&self.parser, user_agent);
        let class = self.classes.id_of(&client.row_value());
        if self.cache.len() >= USER_AGENT_CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(Box::from(user_agent), class);
        class
    }

    /// The classes the ids of [`ClientClassifier::classify`] refer to.
    pub fn classes(&self) -> &ClientClasses {
        &self.classes
    }
}

/// The distinct client row values (`device␟browser␟os`) met so far, each with a small id that
/// never changes: the collect path hands the aggregator the id, not the text. Classifications
/// come from woothee's fixed data set, so the table stays small; nothing is ever removed.
#[derive(Default)]
pub struct ClientClasses {
    table: RwLock<ClassTable>,
}

#[derive(Default)]
struct ClassTable {
    names: Vec<Arc<str>>,
    ids: FxHashMap<Arc<str>, u32>,
}

impl ClientClasses {
    /// The id of the row value `value`, given on first sight.
    pub fn id_of(&self, value: &str) -> u32 {
        if let Some(id) = self.read().ids.get(value) {
            return *id;
        }
        let mut table = self
            .table
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(id) = table.ids.get(value) {
            return *id;
        }
        let id = u32::try_from(table.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(value);
        table.names.push(Arc::clone(&name));
        table.ids.insert(name, id);
        id
    }

    /// The row value of class `id`, if it was given out.
    pub fn name(&self, id: u32) -> Option<Arc<str>> {
        let index = usize::try_from(id).ok()?;
        self.read().names.get(index).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ClassTable> {
        // The table is only appended to, under the write lock, in one step per class: a panic
        // elsewhere cannot leave it half-updated.
        self.table
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The device class of SPEC §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    Other,
}

impl DeviceType {
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Other => "other",
        }
    }
}

/// A classified User-Agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub device: DeviceType,
    pub browser: String,
    pub os: String,
}

impl Client {
    /// Classifies with woothee; tablets are recognised on top of it (woothee files them as
    /// smartphones): iPad, "Tablet", and Android without "Mobile".
    pub fn parse(parser: &woothee::parser::Parser, user_agent: &str) -> Client {
        let Some(result) = parser.parse(user_agent) else {
            return Client {
                device: DeviceType::Other,
                browser: "Unknown".into(),
                os: "Unknown".into(),
            };
        };
        let is_tablet = user_agent.contains("iPad")
            || user_agent.contains("Tablet")
            || (user_agent.contains("Android") && !user_agent.contains("Mobile"));
        let device = match result.category {
            "pc" => DeviceType::Desktop,
            "smartphone" | "mobilephone" if is_tablet => DeviceType::Tablet,
            "smartphone" | "mobilephone" => DeviceType::Mobile,
            _ => DeviceType::Other,
        };
        let known = |name: &str| {
            if name.is_empty() || name == woothee::woothee::VALUE_UNKNOWN {
                "Unknown".to_owned()
            } else {
                name.to_owned()
            }
        };
        Client {
            device,
            browser: known(result.name),
            os: operating_system_family(&known(result.os)),
        }
    }

    /// The row value of the client dimension.
    pub fn row_value(&self) -> String {
        format!(
            "{}{SEPARATOR}{}{SEPARATOR}{}",
            self.device.name(),
            self.browser,
            self.os
        )
    }

    /// The parts of a client row value: device, browser, OS.
    pub fn split_row_value(value: &str) -> (&str, &str, &str) {
        let mut parts = value.splitn(3, SEPARATOR);
        let device = parts.next().unwrap_or("other");
        let browser = parts.next().unwrap_or("Unknown");
        let os = parts.next().unwrap_or("Unknown");
        (device, browser, os)
    }
}

/// The operating system as users name it: woothee names Apple's mobile systems after the device
/// (`iPhone`, `iPad`, `iPod`), and macOS by an old name (`Mac OSX`).
fn operating_system_family(name: &str) -> String {
    match name {
        "iPhone" | "iPad" | "iPod" => "iOS".to_owned(),
        "Mac OSX" => "macOS".to_owned(),
        other => other.to_owned(),
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The counted form of a page path: without query string or fragment, at most
/// [`VALUE_MAX_BYTES`]. `None` when nothing is left.
pub fn normalise_path(path: &str) -> Option<String> {
    normalised_path(path).map(str::to_owned)
}

/// [`normalise_path`] without the copy: the part of `path` that is counted.
pub fn normalised_path(path: &str) -> Option<&str> {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = truncate(path[..end].trim(), VALUE_MAX_BYTES);
    (!path.is_empty()).then_some(path)
}

/// The host of a referrer URL, lower-cased, without port, credentials or a leading `www.`.
/// `None` (direct) for an empty or host-less referrer.
pub fn referrer_domain(referrer: &str) -> Option<String> {
    referrer_host(referrer).map(str::to_ascii_lowercase)
}

/// [`referrer_domain`] without the copy: the host as written in `referrer` (its lower-cased
/// form is the domain; lower-casing ASCII keeps every byte offset).
pub fn referrer_host(referrer: &str) -> Option<&str> {
    // Byte searches for ASCII delimiters: every cut falls at a character boundary.
    let referrer = referrer.trim();
    let after_scheme = match referrer.find("://") {
        Some(index) => &referrer[index + 3..],
        None => referrer,
    };
    let authority_end = after_scheme
        .bytes()
        .position(|byte| matches!(byte, b'/' | b'?' | b'#'))
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    let host = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        &host[..host.find(':').unwrap_or(host.len())]
    };
    let host = host.trim_end_matches('.');
    // `www.` in any case: four ASCII bytes, so the rest starts at a character boundary.
    let host = match host.as_bytes().get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case(b"www.") => &host[4..],
        _ => host,
    };
    let host = truncate(host, VALUE_MAX_BYTES);
    (!host.is_empty()).then_some(host)
}

/// The campaign row value `source␟medium␟campaign`, or `None` when all three are empty.
/// (`utm_content` and `utm_term` are accepted but not rolled up: no report shows them.)
pub fn campaign_value(
    source: Option<&str>,
    medium: Option<&str>,
    campaign: Option<&str>,
) -> Option<String> {
    let mut value = String::new();
    push_campaign_value(&mut value, source, medium, campaign).then_some(value)
}

/// Appends the campaign row value of [`campaign_value`] to `out`; false (nothing appended)
/// when all three are empty.
pub fn push_campaign_value(
    out: &mut String,
    source: Option<&str>,
    medium: Option<&str>,
    campaign: Option<&str>,
) -> bool {
    fn part(value: Option<&str>) -> &str {
        truncate(value.unwrap_or("").trim(), VALUE_MAX_BYTES / 4)
    }
    let (source, medium, campaign) = (part(source), part(medium), part(campaign));
    if source.is_empty() && medium.is_empty() && campaign.is_empty() {
        return false;
    }
    for (index, part) in [source, medium, campaign].into_iter().enumerate() {
        if index > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(part);
    }
    true
}

/// The parts of a campaign row value; empty parts are `None`.
pub fn split_campaign(value: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let mut parts = value.splitn(3, SEPARATOR);
    let mut next = || parts.next().filter(|part| !part.is_empty());
    let source = next();
    let medium = next();
    let campaign = next();
    (source, medium, campaign)
}

/// One `excluded_paths` glob: `*` matches any run of characters (slashes included), `?` one
/// character, everything else itself.
#[derive(Debug, Clone)]
pub struct PathGlob {
    pattern: Vec<char>,
}

impl PathGlob {
    pub fn new(pattern: &str) -> Self {
        PathGlob {
            pattern: pattern.chars().collect(),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        let text: Vec<char> = path.chars().collect();
        // Iterative wildcard matching with single-star backtracking: O(pattern × text).
        let (mut p, mut t) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.pattern.get(p) {
                Some('*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some('?') => {
                    p += 1;
                    t += 1;
                }
                Some(expected) if *expected == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((star_p, star_t)) => {
                        p = star_p + 1;
                        t = star_t + 1;
                        star = Some((star_p, star_t + 1));
                    }
                    None => return false,
                },
            }
        }
        self.pattern[p..].iter().all(|c| *c == '*')
    }
}
