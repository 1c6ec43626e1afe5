//! The cost of the connection guard (src/connection_guard.rs) per request: checking the head of
//! a get-by-id as wrk sends it, and of an analytics collect as a browser sends it, each arriving
//! in one read (the common case) and in two.
//!
//! Run with `cargo bench --bench connection_guard`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tabula::connection_guard::RequestReader;

const GET_BY_ID: &[u8] = b"GET /api/tables/tasks/records/4711 HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\
Authorization: Bearer 3f6b1c0d9e8a7f6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b\r\n\r\n";

const COLLECT: &[u8] = b"POST /api/analytics/collect HTTP/1.1\r\nHost: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n\
Accept: */*\r\nAccept-Language: en-GB,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n\
Content-Type: text/plain;charset=UTF-8\r\nOrigin: https://example.com\r\nReferer: https://example.com/blog/post\r\n\
Sec-Fetch-Mode: no-cors\r\nContent-Length: 61\r\n\r\n{\"p\":\"/blog/post\",\"t\":\"A post\",\"r\":\"https://news.example/\"}";

fn guard(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("connection_guard");
    group.throughput(Throughput::Elements(1));
    for (name, request) in [("get_by_id", GET_BY_ID), ("collect", COLLECT)] {
        let mut reader = RequestReader::default();
        group.bench_function(format!("{name}/one_read"), |bench| {
            bench.iter(|| black_box(reader.inspect(black_box(request))))
        });
        let (first, second) = request.split_at(request.len() / 2);
        let mut reader = RequestReader::default();
        group.bench_function(format!("{name}/two_reads"), |bench| {
            bench.iter(|| {
                black_box(reader.inspect(black_box(first)));
                black_box(reader.inspect(black_box(second)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, guard);
criterion_main!(benches);
