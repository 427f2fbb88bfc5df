//! `/api/download`: a body that is a pure function of its length and seed,
//! served whole or by range over HTTP/1.1 and h2c; exempt from the request
//! timeout but not from the write-stall limit; streaming on through the
//! drain, cut only at the forced close; and resumed on the next process
//! with `Range` + `If-Range` to the same bytes.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use lameduck::testing::binary::Lameduck;
use lameduck::testing::process::Exit;
use lameduck::{Config, Outcome, Phase};
use sha2::{Digest, Sha256};
use support::binary::{Binary, become_subreaper, program};
use support::download::{content_length, fetch, hex, open, path, read_body, sha256};
use support::{TestServer, http, http2, test_config};

const WITHIN: Duration = Duration::from_secs(20);
const STOP: Duration = Duration::from_secs(20);

/// The SHA-256 of the body of 1 MiB with seed 42: worked out once from the
/// generator's definition by a separate implementation (the Python in
/// `src/service/download/keystream.rs`), not by this server. If it changes, every
/// client's half-finished download would resume into different bytes:
/// that needs a new generator version, not a new digest here.
const PINNED_1MIB_SEED_42: &str =
    "5b2605c7135a3f8c54d75039514f0bcb798cfe1a8d74f57380d45aaadea36dca";

async fn stop(server: TestServer) {
    server.shutdown();
    server.report_within(STOP).await;
}

/// The body is a pure function of `bytes` and `seed`: two separate
/// processes send the same bytes under the same strong `ETag`, their
/// SHA-256 is the pinned digest, a shorter body with the same seed is its
/// prefix, and another seed gives other bytes.
#[tokio::test]
async fn the_body_is_the_same_in_two_processes_and_matches_its_pinned_digest() {
    let mut one = Binary::start(&[]);
    let mut two = Binary::start(&[]);
    let whole = path(1 << 20, 42);
    let (a, body_a) = fetch(one.addr, &whole, &[]).await;
    let (b, body_b) = fetch(two.addr, &whole, &[]).await;
    for res in [&a, &b] {
        assert_eq!(res.status, 200);
        assert_eq!(res.header("content-type"), Some("application/octet-stream"));
        assert_eq!(res.header("accept-ranges"), Some("bytes"));
        assert_eq!(content_length(res), 1 << 20);
    }
    let etag = a.header("etag").unwrap();
    assert!(etag.starts_with('"'), "a strong ETag: {etag}");
    assert_eq!(b.header("etag"), Some(etag));
    assert_eq!(sha256(&body_a), PINNED_1MIB_SEED_42);
    assert_eq!(sha256(&body_b), PINNED_1MIB_SEED_42);

    let (_, short) = fetch(two.addr, &path(1000, 42), &[]).await;
    assert_eq!(short, body_a[..1000]);
    let (other, other_body) = fetch(one.addr, &path(1 << 20, 43), &[]).await;
    assert_ne!(other.header("etag"), Some(etag));
    assert_ne!(sha256(&other_body), PINNED_1MIB_SEED_42);

    for bin in [&mut one, &mut two] {
        bin.signal(libc::SIGTERM);
        assert_eq!(bin.exit_code_within(WITHIN), 0);
    }
}

/// Each form of one range gets 206, `Content-Range: bytes FIRST-LAST/N`,
/// the matching `Content-Length`, and exactly that slice of the whole
/// body: `a-b`, `a-`, `-suffix`, a last position past the end (clamped),
/// a suffix longer than the body (all of it).
#[tokio::test]
async fn every_form_of_one_range_gets_206_and_its_slice_of_the_body() {
    let server = TestServer::start(test_config()).await;
    let n = 100_000;
    let (whole, body) = fetch(server.addr, &path(n, 5), &[]).await;
    assert_eq!(whole.status, 200);
    let etag = whole.header("etag").unwrap().to_string();
    let cases = [
        ("bytes=10-19", 10, 19),
        ("bytes=99990-", 99_990, 99_999),
        ("bytes=-7", 99_993, 99_999),
        ("bytes=0-0", 0, 0),
        ("bytes=50000-999999999", 50_000, 99_999),
        ("bytes=-200000", 0, 99_999),
    ];
    for (range, first, last) in cases {
        let (res, part) = fetch(server.addr, &path(n, 5), &[("Range", range)]).await;
        assert_eq!(res.status, 206, "{range}");
        let want = format!("bytes {first}-{last}/{n}");
        assert_eq!(res.header("content-range"), Some(want.as_str()), "{range}");
        assert_eq!(content_length(&res), last - first + 1, "{range}");
        assert_eq!(res.header("etag"), Some(etag.as_str()));
        assert_eq!(res.header("accept-ranges"), Some("bytes"));
        assert!(part == body[first as usize..=last as usize], "{range}");
    }
    stop(server).await;
}

/// A range that selects nothing (starting at the end or past it, or the
/// empty suffix `-0`) gets 416 with `Content-Range: bytes */N` and a JSON
/// error.
#[tokio::test]
async fn a_range_past_the_end_gets_416_with_the_bodys_length() {
    let server = TestServer::start(test_config()).await;
    for range in ["bytes=1000-", "bytes=1000-2000", "bytes=5000-", "bytes=-0"] {
        let (res, body) = fetch(server.addr, &path(1000, 5), &[("Range", range)]).await;
        assert_eq!(res.status, 416, "{range}");
        assert_eq!(res.header("content-range"), Some("bytes */1000"), "{range}");
        let err: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
        assert!(err["error"].is_string(), "{err}");
    }
    stop(server).await;
}

/// A `Range` that cannot be read is ignored (RFC 9110 §14.2), and so are
/// several ranges (a choice RFC 9110 allows): either way the answer is 200
/// and the whole body.
#[tokio::test]
async fn an_unreadable_range_or_several_ranges_get_the_whole_body() {
    let server = TestServer::start(test_config()).await;
    let (_, whole) = fetch(server.addr, &path(1000, 5), &[]).await;
    for range in [
        "bytes=5-3",
        "bytes=x-y",
        "lines=0-5",
        "bytes=",
        "bytes=0-1,5-6",
        "bytes=0-1,2000-",
    ] {
        let (res, body) = fetch(server.addr, &path(1000, 5), &[("Range", range)]).await;
        assert_eq!(res.status, 200, "{range}");
        assert_eq!(res.header("content-range"), None, "{range}");
        assert!(body == whole, "{range}");
    }
    stop(server).await;
}

/// `If-Range` with the answer's own `ETag` honours the `Range` (206);
/// another `ETag`, the same one made weak, or a date gets the whole body
/// (200): the client's copy is not known to be this body, so a part of
/// this one must not be spliced onto it.
#[tokio::test]
async fn if_range_with_the_etag_gets_206_and_anything_else_the_whole_body() {
    let server = TestServer::start(test_config()).await;
    let (whole, body) = fetch(server.addr, &path(1000, 5), &[]).await;
    let etag = whole.header("etag").unwrap().to_string();
    let range = ("Range", "bytes=600-");

    let (res, part) = fetch(server.addr, &path(1000, 5), &[range, ("If-Range", &etag)]).await;
    assert_eq!(res.status, 206);
    assert_eq!(res.header("content-range"), Some("bytes 600-999/1000"));
    assert!(part == body[600..]);

    let weak = format!("W/{etag}");
    let (other, _) = fetch(server.addr, &path(1000, 6), &[]).await;
    let others = [
        other.header("etag").unwrap(),
        &weak,
        "Wed, 21 Oct 2015 07:28:00 GMT",
    ];
    for if_range in others {
        let (res, got) = fetch(
            server.addr,
            &path(1000, 5),
            &[range, ("If-Range", if_range)],
        )
        .await;
        assert_eq!(res.status, 200, "{if_range}");
        assert!(got == body, "{if_range}");
    }
    stop(server).await;
}

/// `HEAD` answers 200 with what `GET` would say of the body — its
/// `Content-Length`, `ETag`, `Accept-Ranges`, `Content-Type` — and not a
/// byte of it, even for the largest body; and it ignores `Range` (RFC 9110
/// §14.2: only `GET` has ranges). A `HEAD` is not a download: nothing is
/// counted as open or cut.
#[tokio::test]
async fn head_answers_with_the_bodys_length_and_no_body_and_ignores_range() {
    let server = TestServer::start(test_config()).await;
    let (get, _) = fetch(server.addr, &path(1000, 5), &[]).await;
    for (bytes, headers) in [
        (1000, &[][..]),
        (1000, &[("Range", "bytes=0-9")][..]),
        (1 << 30, &[][..]),
    ] {
        let (mut conn, res, first) = open(server.addr, "HEAD", &path(bytes, 5), headers).await;
        assert_eq!(res.status, 200, "{headers:?}");
        assert_eq!(content_length(&res), bytes);
        assert_eq!(res.header("content-range"), None);
        assert_eq!(res.header("accept-ranges"), Some("bytes"));
        assert_eq!(res.header("content-type"), Some("application/octet-stream"));
        if bytes == 1000 {
            assert_eq!(res.header("etag"), get.header("etag"));
        }
        let after = http::closed_within(&mut conn, WITHIN).await;
        assert!(
            first.is_empty() && after.is_empty(),
            "a body byte after HEAD"
        );
    }
    let metrics = &server.app.metrics;
    assert_eq!(metrics.downloads.open.load(Relaxed), 0);
    assert_eq!(metrics.downloads.cut.load(Relaxed), 0);
    stop(server).await;
}

/// An h2c request with `headers`.
fn h2_request(method: &str, path: &str, headers: &[(&str, &str)]) -> ::http::Request<()> {
    let mut req = ::http::Request::builder()
        .method(method)
        .uri(format!("http://test{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(()).unwrap()
}

/// Sends `req` on `client` and gives the answer's head and body.
async fn h2_fetch(
    client: &mut http2::Client,
    req: ::http::Request<()>,
) -> (::http::response::Parts, Vec<u8>) {
    let (pending, _) = client.send_request(req, true).unwrap();
    let (parts, body) = pending.await.expect("an answer").into_parts();
    let frames = http2::data_frames(::http::Response::from_parts(parts.clone(), body)).await;
    (parts, frames.concat())
}

/// The download over h2c is the same: the whole body's bytes are those
/// sent over HTTP/1.1, a `Range` gets 206 with its slice, and `HEAD` gets
/// the length in its HEADERS frame and no DATA frame at all.
#[tokio::test]
async fn over_h2c_the_download_is_the_same_bytes_and_takes_ranges() {
    let server = TestServer::start(test_config()).await;
    let p = path(300_000, 9);
    let (_, over_http1) = fetch(server.addr, &p, &[]).await;
    let (mut client, _conn) = http2::connect(server.addr).await;

    let (whole, body) = h2_fetch(&mut client, h2_request("GET", &p, &[])).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.headers["content-length"], "300000");
    assert!(body == over_http1);

    let range = [("range", "bytes=1000-1999")];
    let (part, bytes) = h2_fetch(&mut client, h2_request("GET", &p, &range)).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.headers["content-range"], "bytes 1000-1999/300000");
    assert!(bytes == over_http1[1000..2000]);

    let (head, none) = h2_fetch(&mut client, h2_request("HEAD", &p, &[])).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], "300000");
    assert_eq!(head.headers["etag"], whole.headers["etag"]);
    assert!(none.is_empty());
    stop(server).await;
}

/// Missing, malformed, zero or too-large parameters get 400 and a JSON
/// error naming the parameter, never a 500; a `bytes` past the 1 GiB
/// bound is one of them, the bound itself is served. Another method gets
/// 405 with the route's `Allow`.
#[tokio::test]
async fn bad_parameters_get_400_with_a_json_error_naming_them() {
    let server = TestServer::start(test_config()).await;
    let cases = [
        ("", "bytes"),
        ("?seed=1", "bytes"),
        ("?bytes=10", "seed"),
        ("?bytes=0&seed=1", "bytes"),
        ("?bytes=1073741825&seed=1", "bytes"),
        ("?bytes=ten&seed=1", "bytes"),
        ("?bytes=-1&seed=1", "bytes"),
        ("?bytes=10&seed=-1", "seed"),
        ("?bytes=10&seed=18446744073709551616", "seed"),
        ("?bytes=10&seed=1&rate=0", "rate"),
        ("?bytes=10&seed=1&rate=1073741825", "rate"),
        ("?bytes=10&seed=1&rate=fast", "rate"),
        ("?bytes=%zz&seed=1", "percent-escape"),
    ];
    for (query, names) in cases {
        let res = http::get(server.addr, &format!("/api/download{query}")).await;
        assert_eq!(res.status, 400, "{query}");
        let err: serde_json::Value = serde_json::from_slice(&res.body).expect("a JSON error");
        let msg = err["error"].as_str().unwrap();
        assert!(msg.contains(names), "{query}: {msg}");
    }
    let (mut conn, at_bound, _) = open(server.addr, "HEAD", &path(1 << 30, 1), &[]).await;
    assert_eq!(at_bound.status, 200);
    http::closed_within(&mut conn, WITHIN).await;

    let post = http::request(server.addr, "POST", &path(10, 1), Some("")).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));
    stop(server).await;
}

/// A download is exempt from `--request-timeout`: throttled to 100 kB/s,
/// 300 kB takes about three seconds, three times the one-second request
/// timeout, and arrives whole with 200. (A paced body is no stalled
/// write: the write-stall limit, the same second, never fires either.)
#[tokio::test]
async fn a_throttled_download_outlives_the_request_timeout() {
    let config = Config {
        request_timeout: Duration::from_secs(1),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let (_, want) = fetch(server.addr, &path(300_000, 2), &[]).await;
    let start = Instant::now();
    let throttled = format!("{}&rate=100000", path(300_000, 2));
    let (res, got) = fetch(server.addr, &throttled, &[]).await;
    let took = start.elapsed();
    assert_eq!(res.status, 200);
    assert!(got == want, "{} of 300000 bytes", got.len());
    assert!(took > Duration::from_secs(2), "paced: {took:?}");
    stop(server).await;
}

/// A download in flight when the drain begins is not ended by it (unlike
/// an event stream): it keeps streaming to its last byte, and the server
/// then exits drained, with nothing forced and nothing cut.
#[tokio::test]
async fn a_download_keeps_streaming_through_the_drain_and_the_exit_is_clean() {
    let server = TestServer::start(test_config()).await;
    let (_, want) = fetch(server.addr, &path(400_000, 3), &[]).await;
    let throttled = format!("{}&rate=200000", path(400_000, 3));
    let addr = server.addr;
    let client = tokio::spawn(async move { fetch(addr, &throttled, &[]).await });
    server
        .wait_until(WITHIN, "the download is open", |app| {
            app.metrics.downloads.open.load(Relaxed) == 1
        })
        .await;

    server.shutdown();
    server.wait_for_phase(WITHIN, Phase::Draining).await;
    assert_eq!(
        server.app.metrics.downloads.open.load(Relaxed),
        1,
        "still streaming in the drain"
    );
    let (res, got) = client.await.unwrap();
    assert_eq!(res.status, 200);
    assert!(got == want, "{} of 400000 bytes", got.len());

    let app = server.app.clone();
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.connections_aborted, 0);
    assert_eq!(app.metrics.downloads.cut.load(Relaxed), 0);
    assert_eq!(app.metrics.downloads.bytes_sent.load(Relaxed), 800_000);
}

/// A download that starts during the drain, on a keep-alive connection
/// still in its keep-alive grace, says `Connection: close` like every
/// HTTP/1 answer then, and is sent whole before the connection closes.
#[tokio::test]
async fn a_download_started_in_the_drain_says_connection_close_and_is_sent_whole() {
    let config = Config {
        keepalive_grace: Duration::from_secs(10),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/livez").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);

    server.shutdown();
    server.wait_for_phase(WITHIN, Phase::Draining).await;
    http::send_get(&mut conn, &path(200_000, 4)).await;
    let (res, first) = http::read_head(&mut conn).await;
    assert_eq!(res.status, 200);
    assert!(res.closes(), "Connection: close in the drain: {res:?}");
    let got = read_body(&mut conn, &res, first, |_| {}).await;
    assert_eq!(got, 200_000);
    http::closed_within(&mut conn, WITHIN).await;
    assert_eq!(server.report_within(STOP).await.outcome, Outcome::Drained);
}

/// At the shutdown deadline a download still streaming is cut, over
/// HTTP/1.1 and h2c alike: after `--force-grace` its connection is
/// aborted, each client's body ends short of its `Content-Length` (over
/// h2c, without END_STREAM), the report says forced by the deadline with
/// both connections aborted, and both downloads count as cut.
#[tokio::test]
async fn the_forced_close_cuts_a_download_over_http1_and_h2c_short_of_its_length() {
    let config = Config {
        shutdown_timeout: Duration::from_millis(500),
        force_grace: Duration::from_millis(200),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let n: u64 = 10_000_000;
    let slow = format!("{}&rate=1000000", path(n, 8));

    let addr = server.addr;
    let over_http1 = {
        let slow = slow.clone();
        tokio::spawn(async move {
            let (mut conn, res, first) = open(addr, "GET", &slow, &[]).await;
            read_body(&mut conn, &res, first, |_| {}).await
        })
    };
    let (mut client, _conn) = http2::connect(server.addr).await;
    let (pending, _) = client
        .send_request(h2_request("GET", &slow, &[]), true)
        .unwrap();
    let over_h2c = tokio::spawn(async move {
        let mut body = pending.await.expect("the head").into_body();
        let mut got = 0;
        loop {
            match body.data().await {
                Some(Ok(chunk)) => {
                    got += chunk.len() as u64;
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                // The connection's end without END_STREAM.
                Some(Err(_)) | None => return (got, body.is_end_stream()),
            }
        }
    });
    server
        .wait_until(WITHIN, "both downloads open", |app| {
            app.metrics.downloads.open.load(Relaxed) == 2
        })
        .await;

    let app = server.app.clone();
    server.shutdown();
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::ForcedByDeadline);
    assert_eq!(report.connections_aborted, 2);
    let got = over_http1.await.unwrap();
    assert!(0 < got && got < n, "HTTP/1.1: {got} of {n}");
    let (got, ended) = over_h2c.await.unwrap();
    assert!(0 < got && got < n && !ended, "h2c: {got} of {n}");
    support::eventually(WITHIN, "both downloads dropped", || {
        app.metrics.downloads.open.load(Relaxed) == 0
    })
    .await;
    assert_eq!(app.metrics.downloads.cut.load(Relaxed), 2);
}

/// A client that stops reading a download is cut once a write has made no
/// progress for `--request-timeout` (the write-stall limit), though the
/// download itself is exempt from that timeout: its body is dropped,
/// counted as cut, and the connection closed.
#[tokio::test]
async fn a_download_whose_client_stops_reading_is_cut_after_the_write_stalls() {
    let config = Config {
        request_timeout: Duration::from_secs(1),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let (mut conn, res, first) = open(server.addr, "GET", &path(1 << 30, 1), &[]).await;
    assert_eq!(res.status, 200);
    // Reads nothing more until the server has given up on it.
    server
        .wait_until(WITHIN, "the download is cut", |app| {
            app.metrics.downloads.cut.load(Relaxed) == 1
        })
        .await;
    assert_eq!(server.app.metrics.downloads.open.load(Relaxed), 0);
    let got = read_body(&mut conn, &res, first, |_| {}).await;
    assert!(got < 1 << 30, "{got}");
    stop(server).await;
}

/// `curl -C -` resumes a partial file: given the first 300,000 bytes of a
/// body on disk, it asks for the rest with a `Range`, gets 206, and the
/// file is then the whole body, to the digest.
#[tokio::test]
#[ignore = "needs curl: apt-get install curl"]
async fn curl_continue_at_resumes_a_partial_file_to_the_whole_body() {
    let server = TestServer::start(test_config()).await;
    let p = path(1 << 20, 42);
    let (_, whole) = fetch(server.addr, &p, &[]).await;
    let file = std::env::temp_dir().join(format!("lameduck-curl-{}.part", std::process::id()));
    std::fs::write(&file, &whole[..300_000]).unwrap();

    let url = format!("http://{}{p}", server.addr);
    let out = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--continue-at", "-"])
        .args(["--write-out", "%{http_code}", "--output"])
        .arg(&file)
        .arg(&url)
        .output()
        .await
        .expect("curl runs");
    let resumed = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "206");
    assert_eq!(sha256(&resumed), PINNED_1MIB_SEED_42);
    stop(server).await;
}

/// Reads the body of the answer to `GET path` with `headers` from `addr`
/// into `hash`; gives the head and how many bytes came.
async fn hash_into(
    hash: &mut Sha256,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::Response, u64) {
    let (mut conn, res, first) = open(addr, "GET", path, headers).await;
    let got = read_body(&mut conn, &res, first, |b| hash.update(b)).await;
    (res, got)
}

/// The whole story, with the real binary and a real SIGHUP. A 50 MB
/// download throttled to 10 MB/s is in flight when the process is
/// upgraded. The old process streams on through its drain until
/// `--shutdown-timeout 2s` passes, cuts the download after
/// `--force-grace`, and exits 1. The client, holding K < N bytes, asks the
/// new process on the same socket for `bytes=K-` with `If-Range: <ETag>`,
/// gets 206 with `Content-Range: bytes K-(N-1)/N`, and the SHA-256 of the
/// two parts is that of the whole body, which the new process also
/// serves. The new process then stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_at_an_upgrades_deadline_resumes_on_the_new_process_to_the_same_digest() {
    become_subreaper();
    let args = ["--shutdown-timeout", "2s", "--force-grace", "500ms"];
    let mut server = Lameduck::start(program(), &args, WITHIN).unwrap_or_else(|e| panic!("{e}"));
    let addr = server.addr();
    let n: u64 = 50_000_000;
    let whole = path(n, 77);

    // The client: reads until the old process cuts it, and says when the
    // first megabyte is in.
    let (first_mb, mut first_mb_in) = tokio::sync::oneshot::channel();
    let throttled = format!("{whole}&rate=10000000");
    let client = tokio::spawn(async move {
        let mut hash = Sha256::new();
        let mut first_mb = Some(first_mb);
        let (mut conn, res, first) = open(addr, "GET", &throttled, &[]).await;
        let mut seen = 0;
        let got = read_body(&mut conn, &res, first, |b| {
            hash.update(b);
            seen += b.len();
            if seen >= 1 << 20
                && let Some(tx) = first_mb.take()
            {
                let _ = tx.send(());
            }
        })
        .await;
        (res, hash, got)
    });
    tokio::time::timeout(WITHIN, &mut first_mb_in)
        .await
        .expect("the first megabyte within the limit")
        .expect("the client is reading");

    let (server, upgraded) = tokio::task::spawn_blocking(move || {
        let upgraded = server.upgrade(Duration::from_secs(60));
        (server, upgraded)
    })
    .await
    .unwrap();
    let upgraded = upgraded.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        upgraded.old_exit,
        Exit::Code(1),
        "the old process was forced"
    );
    let report = server
        .log()
        .find_after(0, |l| {
            l.contains("cause=\"upgrade\"").then(|| l.to_string())
        })
        .unwrap();
    assert!(
        report.contains("outcome=\"forced_by_deadline\""),
        "{report}"
    );

    let (res, mut hash, k) = client.await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(content_length(&res), n);
    assert!((1 << 20) <= k && k < n, "cut mid-body: {k} of {n}");
    let etag = res.header("etag").unwrap().to_string();

    // The resume, from the new process on the same socket, unthrottled.
    let range = format!("bytes={k}-");
    let headers = [("Range", range.as_str()), ("If-Range", etag.as_str())];
    let (rest, got) = hash_into(&mut hash, addr, &whole, &headers).await;
    assert_eq!(rest.status, 206);
    let content_range = format!("bytes {k}-{}/{n}", n - 1);
    assert_eq!(rest.header("content-range"), Some(content_range.as_str()));
    assert_eq!(got, n - k);
    let assembled = hex(hash.finalize().as_slice());

    let mut full = Sha256::new();
    let (all, got) = hash_into(&mut full, addr, &whole, &[]).await;
    assert_eq!((all.status, got), (200, n));
    assert_eq!(all.header("etag"), Some(etag.as_str()));
    assert_eq!(assembled, hex(full.finalize().as_slice()));

    assert_eq!(server.terminate(WITHIN).unwrap(), Exit::Code(0));
}
