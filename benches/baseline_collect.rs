//! The bare baseline of the analytics collect benchmark (issue 6): an actix-web server whose
//! handler parses the same page-view JSON and bumps one HashMap — nothing else. The collect path
//! must reach at least 0.8 × its requests/s. Run by `benches/analytics_collect.sh`:
//! `cargo bench --bench baseline_collect -- 127.0.0.1:3901` serves until killed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

/// The same fields the collect endpoint reads.
#[derive(Deserialize)]
#[allow(dead_code)]
struct PageView<'a> {
    #[serde(borrow)]
    p: Cow<'a, str>,
    #[serde(borrow, default)]
    t: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    r: Option<Cow<'a, str>>,
    #[serde(default)]
    sw: Option<u32>,
    #[serde(default)]
    sh: Option<u32>,
    #[serde(borrow, default)]
    us: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    um: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uc: Option<Cow<'a, str>>,
}

async fn collect(counts: web::Data<Mutex<HashMap<String, u64>>>, body: web::Bytes) -> HttpResponse {
    let Ok(view) = serde_json::from_slice::<PageView<'_>>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut counts = counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match counts.get_mut(view.p.as_ref()) {
        Some(count) => *count += 1,
        None => {
            counts.insert(view.p.into_owned(), 1);
        }
    }
    HttpResponse::NoContent().finish()
}

fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .skip(1)
        .find(|argument| argument.contains(':'))
        .unwrap_or_else(|| "127.0.0.1:3901".to_owned());
    let counts = web::Data::new(Mutex::new(HashMap::<String, u64>::new()));
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(counts.clone())
                .route("/api/analytics/collect", web::post().to(collect))
        })
        .bind(&address)?
        .run()
        .await
    })
}
