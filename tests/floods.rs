//! Floods: the resource attacks HTTP/2 and HTTP/1 allow, each over a
//! real socket against the real binary with its default limits (only the
//! timeouts shortened, so the tests are quick).
//!
//! Each test asserts three things: the attacking connection is ended
//! (GOAWAY `ENHANCE_YOUR_CALM`, a reset stream, or a close), the server's
//! memory stays within a bound while it lasts, and a fresh client's
//! `/healthz` is answered during it. The bounds and where each one lives
//! are in `src/conn/mod.rs`'s table of hostile clients and in
//! `src/conn/h2_limits.rs`.

mod support;

use std::time::{Duration, Instant};

use support::binary::Binary;
use support::h2_raw::{self, RawH2, rss_kib};
use support::http;

/// How much the server's resident memory may grow during one flood. The
/// floods below would cost from tens of MiB to many GiB unbounded; the
/// bounds they meet cost a few MiB at most.
const RSS_GROWTH_KIB: u64 = 32 * 1024;

/// A fresh connection's `/healthz` is answered within a second.
async fn healthz_answers(addr: std::net::SocketAddr) {
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(5), http::get(addr, "/healthz"))
        .await
        .expect("/healthz within 5 s");
    assert_eq!(res.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "/healthz took {:?} during the flood",
        started.elapsed()
    );
}

/// Sends `flood` (for at most 5 s: the server may stop reading), checks
/// `/healthz` meanwhile, and expects the connection to get GOAWAY
/// `ENHANCE_YOUR_CALM` and be closed, with the server's memory (`before`,
/// in KiB) grown by less than the bound.
async fn calmed_down(bin: &Binary, before: u64, mut conn: RawH2, flood: &[u8]) {
    conn.send_within(flood, Duration::from_secs(5)).await;
    healthz_answers(bin.addr).await;
    let (frames, closed) = conn.frames_until_end(Duration::from_secs(10)).await;
    let goaway = frames
        .iter()
        .find(|f| f.kind == h2_raw::GOAWAY)
        .and_then(|f| f.error_code());
    assert_eq!(goaway, Some(h2_raw::ENHANCE_YOUR_CALM), "{frames:?}");
    assert!(closed, "the connection stays open after its GOAWAY");
    assert!(grew(bin, before) < RSS_GROWTH_KIB);
}

/// How much the server's memory grew since `before`, in KiB; printed for
/// `--nocapture`.
fn grew(bin: &Binary, before: u64) -> u64 {
    let grew = rss_kib(bin.pid()).saturating_sub(before);
    eprintln!("server RSS grew {grew} KiB");
    grew
}

/// Rapid Reset (CVE-2023-44487): streams opened and reset at once, before
/// the server has taken them, cost it a handler each and the client
/// nothing. h2 allows 20 such streams pending at once
/// (`h2_limits::MAX_PENDING_ACCEPT_RESET_STREAMS`); past them the
/// connection gets GOAWAY `ENHANCE_YOUR_CALM` and is closed.
#[tokio::test]
async fn rapid_reset_gets_goaway_enhance_your_calm_and_healthz_keeps_answering() {
    let bin = Binary::start(&[]);
    let before = rss_kib(bin.pid());
    let conn = RawH2::connect(bin.addr, &[]).await;
    let mut flood = Vec::new();
    for i in 0..2_000u32 {
        let stream = 2 * i + 1;
        flood.extend(h2_raw::get(stream, "/api/slow?ms=5000"));
        flood.extend(h2_raw::frame(
            h2_raw::RST_STREAM,
            0,
            stream,
            &h2_raw::CANCEL.to_be_bytes(),
        ));
    }
    calmed_down(&bin, before, conn, &flood).await;
}

/// CONTINUATION flood (CVE-2024-27316 family): a header block that never
/// ends, in frames that each carry next to nothing. h2 counts them
/// against what the header list (`--max-header-bytes`) can need, and past
/// that sends GOAWAY `ENHANCE_YOUR_CALM`, without buffering them.
#[tokio::test]
async fn a_continuation_flood_gets_goaway_enhance_your_calm() {
    let bin = Binary::start(&[]);
    let before = rss_kib(bin.pid());
    let conn = RawH2::connect(bin.addr, &[]).await;
    let mut flood = h2_raw::frame(
        h2_raw::HEADERS,
        0, // no END_HEADERS: CONTINUATION frames follow
        1,
        &h2_raw::request_block("GET", "/healthz"),
    );
    // One header field, its value split over a frame each: an x-a of
    // 100,000 bytes, far past the 64 KiB header list.
    let mut field = vec![0x00];
    h2_raw::hpack_str(&mut field, b"x-a");
    h2_raw::hpack_int(&mut field, 0, 7, 100_000);
    flood.extend(h2_raw::frame(h2_raw::CONTINUATION, 0, 1, &field));
    for _ in 0..10_000 {
        flood.extend(h2_raw::frame(h2_raw::CONTINUATION, 0, 1, &[b'a'; 10]));
    }
    calmed_down(&bin, before, conn, &flood).await;
}

/// HPACK bomb: one 4,000-byte header stored in the decoder's table, then
/// named again by a single byte 20,000 times: 80 MB of headers from a
/// 24 KB header block. The decoded list is bounded by
/// `--max-header-bytes`: h2 stops decoding there, and answers the stream
/// 431, or the connection GOAWAY `ENHANCE_YOUR_CALM`, without holding the
/// list.
#[tokio::test]
async fn an_hpack_bomb_is_refused_without_being_decoded() {
    let bin = Binary::start(&[]);
    let before = rss_kib(bin.pid());
    let mut conn = RawH2::connect(bin.addr, &[]).await;
    let mut block = h2_raw::request_block("GET", "/healthz");
    // Literal with incremental indexing, new name (RFC 7541 §6.2.1).
    block.push(0x40);
    h2_raw::hpack_str(&mut block, b"x-bomb");
    h2_raw::hpack_str(&mut block, &[b'b'; 4_000]);
    // Dynamic entry 1 is static index 62: one byte each (§6.1).
    block.extend(std::iter::repeat_n(0x80 | 62, 20_000));
    let mut bomb = Vec::new();
    let mut chunks = block.chunks(16 * 1024).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let kind = if first {
            h2_raw::HEADERS
        } else {
            h2_raw::CONTINUATION
        };
        let flags = if chunks.peek().is_none() {
            h2_raw::END_HEADERS | h2_raw::END_STREAM
        } else {
            0
        };
        bomb.extend(h2_raw::frame(kind, flags, 1, chunk));
        first = false;
    }
    conn.send(&bomb).await;
    healthz_answers(bin.addr).await;
    let mut refused = false;
    let until = Instant::now() + Duration::from_secs(10);
    while let Some(f) = conn.next_frame(until - Instant::now()).await {
        // An answer on stream 1 that is not the 200 of /healthz (whose
        // HEADERS starts with the static 200, 0x88), or a GOAWAY.
        let answered_431 = f.kind == h2_raw::HEADERS && f.stream == 1 && f.payload[0] != 0x88;
        let calm = f.kind == h2_raw::GOAWAY && f.error_code() == Some(h2_raw::ENHANCE_YOUR_CALM);
        assert!(
            !(f.kind == h2_raw::HEADERS && f.stream == 1 && f.payload[0] == 0x88),
            "the bomb's request was served"
        );
        if answered_431 || calm {
            eprintln!("the bomb got {f:?}");
            refused = true;
            break;
        }
    }
    assert!(refused, "no 431 and no GOAWAY for the bomb");
    assert!(grew(&bin, before) < RSS_GROWTH_KIB);
}

/// PING flood (CVE-2019-9512) from a client that reads none of the
/// answers: h2 holds one PING answer at a time and reads no further
/// frame until it is written, so the answers stop at the socket, which
/// the write-stall limit (`--request-timeout`) then closes.
#[tokio::test]
async fn a_ping_flood_that_reads_nothing_is_closed_at_the_write_stall() {
    flood_that_reads_nothing(h2_raw::frame(h2_raw::PING, 0, 0, &[7; 8])).await;
}

/// SETTINGS flood (CVE-2019-9515): every SETTINGS frame asks for an
/// acknowledgement; the same bound as the PING flood's.
#[tokio::test]
async fn a_settings_flood_that_reads_nothing_is_closed_at_the_write_stall() {
    flood_that_reads_nothing(h2_raw::settings(&[(h2_raw::INITIAL_WINDOW_SIZE, 65_535)])).await;
}

/// Sends `frame` over and over, reading nothing, for at most 15 s.
async fn flood_that_reads_nothing(frame: Vec<u8>) {
    let bin = Binary::start(&["--request-timeout", "2s"]);
    let mut conn = RawH2::connect(bin.addr, &[]).await;
    never_read(&bin, conn.tcp(), &frame.repeat(1_000)).await;
}

/// Writes `batch` over and over on `tcp` and reads nothing, until a write
/// fails or stays stuck (the server stopped reading, then closed), for at
/// most 15 s; checks `/healthz` meanwhile. Then the server must have closed
/// the connection, within its stall limit, and its memory must have grown
/// by less than the bound.
async fn never_read(bin: &Binary, tcp: &mut tokio::net::TcpStream, batch: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let before = rss_kib(bin.pid());
    let started = Instant::now();
    let mut checked = false;
    while started.elapsed() < Duration::from_secs(15) {
        match tokio::time::timeout(Duration::from_secs(4), tcp.write_all(batch)).await {
            Ok(Ok(())) => {}
            _ => break,
        }
        if !checked && started.elapsed() > Duration::from_millis(500) {
            healthz_answers(bin.addr).await;
            checked = true;
        }
    }
    if !checked {
        healthz_answers(bin.addr).await;
    }
    assert!(grew(bin, before) < RSS_GROWTH_KIB);
    // The server gave up on the connection: reading now finds its end
    // (after whatever answers the kernel had queued).
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the flooding connection is still open");
    eprintln!("closed {:?} after the flood began", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Empty DATA frames (CVE-2019-9518): each costs a frame's work and
/// carries nothing. h2 allows a few per connection, then sends GOAWAY
/// `ENHANCE_YOUR_CALM`.
#[tokio::test]
async fn an_empty_data_frame_flood_gets_goaway_enhance_your_calm() {
    let bin = Binary::start(&[]);
    let before = rss_kib(bin.pid());
    let conn = RawH2::connect(bin.addr, &[]).await;
    let mut flood = h2_raw::frame(
        h2_raw::HEADERS,
        h2_raw::END_HEADERS, // a body follows
        1,
        &h2_raw::request_block("POST", "/api/items"),
    );
    for _ in 0..100_000 {
        flood.extend(h2_raw::frame(h2_raw::DATA, 0, 1, &[]));
    }
    calmed_down(&bin, before, conn, &flood).await;
}

/// A client that advertises a window of 0 and asks for 100 downloads of
/// 10 MB each: the server could send nothing, and would hold every
/// stream, its handler and its next chunk for as long as the client
/// stayed. Each stream is reset (`CANCEL`) once its answer has waited
/// for the window for the write-stall limit (`--request-timeout`), and
/// the idle connection is then ended with GOAWAY.
#[tokio::test]
async fn streams_whose_window_stays_shut_are_reset_at_the_write_stall_limit() {
    let bin = Binary::start(&["--request-timeout", "2s", "--idle-timeout", "3s"]);
    let before = rss_kib(bin.pid());
    let mut conn = RawH2::connect(bin.addr, &[(h2_raw::INITIAL_WINDOW_SIZE, 0)]).await;
    let mut asks = h2_raw::frame(h2_raw::SETTINGS, h2_raw::ACK, 0, &[]);
    let streams: Vec<u32> = (0..100).map(|i| 2 * i + 1).collect();
    for (i, &stream) in streams.iter().enumerate() {
        asks.extend(h2_raw::get(
            stream,
            &format!("/api/download?bytes=10000000&seed={i}"),
        ));
    }
    let asked = Instant::now();
    conn.send(&asks).await;
    healthz_answers(bin.addr).await;
    let mut reset = std::collections::BTreeSet::new();
    let mut goaway = None;
    let until = Instant::now() + Duration::from_secs(20);
    while goaway.is_none() {
        let Some(f) = conn
            .next_frame(until.saturating_duration_since(Instant::now()))
            .await
        else {
            break;
        };
        assert_ne!(f.kind, h2_raw::DATA, "data sent into a shut window");
        match f.kind {
            h2_raw::RST_STREAM => {
                assert_eq!(f.error_code(), Some(h2_raw::CANCEL));
                reset.insert(f.stream);
                if reset.len() == 1 {
                    // Not before the limit: the window had its chance.
                    assert!(asked.elapsed() >= Duration::from_millis(1_900));
                }
            }
            h2_raw::GOAWAY => goaway = f.error_code(),
            _ => {}
        }
    }
    assert_eq!(reset, streams.into_iter().collect(), "every stream reset");
    assert_eq!(goaway, Some(0), "GOAWAY (NO_ERROR) at the idle timeout");
    assert!(grew(&bin, before) < RSS_GROWTH_KIB);
    let metrics = http::get(bin.addr, "/metrics").await;
    assert!(
        metrics
            .text()
            .contains("lameduck_h2_streams_stalled_total 100"),
        "{}",
        metrics.text()
    );
}

/// More streams than `h2_limits::MAX_CONCURRENT_STREAMS` (100) at once:
/// the server advertises the limit, serves 100, and refuses the rest
/// with `REFUSED_STREAM` (safe to retry: they never ran).
#[tokio::test]
async fn streams_past_the_concurrency_limit_are_refused() {
    let bin = Binary::start(&[]);
    let mut conn = RawH2::connect(bin.addr, &[]).await;
    let mut asks = Vec::new();
    for i in 0..110u32 {
        asks.extend(h2_raw::get(2 * i + 1, "/api/slow?ms=1000"));
    }
    conn.send(&asks).await;
    let first = conn.next_frame(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.kind, h2_raw::SETTINGS);
    let advertised = first
        .payload
        .chunks(6)
        .find(|s| s[..2] == [0, 3]) // SETTINGS_MAX_CONCURRENT_STREAMS
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(advertised, Some(100));
    let mut refused = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while let Some(f) = conn
        .next_frame(until.saturating_duration_since(Instant::now()))
        .await
    {
        if f.kind == h2_raw::RST_STREAM && f.error_code() == Some(0x7) {
            refused += 1;
        }
        if refused == 10 {
            break;
        }
    }
    assert_eq!(refused, 10, "the 10 streams past the limit are refused");
}

/// HTTP/1 pipelining flood: requests sent without end and never read.
/// hyper reads one head at a time into a buffer bounded by
/// `--max-header-bytes`, and answers in order; once the answers fill the
/// socket, the write-stall limit (`--request-timeout`) closes it. Nothing
/// queues in the server beyond its buffers.
#[tokio::test]
async fn a_pipelining_flood_that_reads_nothing_is_closed_at_the_write_stall() {
    let bin = Binary::start(&["--request-timeout", "2s"]);
    let mut tcp = tokio::net::TcpStream::connect(bin.addr).await.unwrap();
    let batch = b"GET /api/download?bytes=1000&seed=3 HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1_000);
    never_read(&bin, &mut tcp, &batch).await;
}

/// Chunk-extension bomb: chunks of one byte, each with a long extension
/// (which nobody reads). hyper stops at 16 KiB of extensions per body.
#[tokio::test]
async fn a_chunk_extension_bomb_gets_400_and_close() {
    let bin = Binary::start(&[]);
    let mut conn = http::connect(bin.addr).await;
    let mut req =
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    let ext = "x".repeat(1_000);
    for _ in 0..100 {
        req.extend(format!("1;{ext}\r\n{{\r\n").as_bytes());
    }
    // The writes may fail once the server has answered and closed.
    let _ = http::try_send(&mut conn, &req).await;
    let res = http::read_response(&mut conn).await.expect("an answer");
    assert_eq!((res.status, res.closes()), (400, true));
    healthz_answers(bin.addr).await;
}

/// Trailer bomb: a chunked body whose trailer section never ends. hyper
/// stops at 16 KiB of trailers (and at its header-count limit).
#[tokio::test]
async fn a_trailer_bomb_gets_400_and_close() {
    let bin = Binary::start(&[]);
    let mut conn = http::connect(bin.addr).await;
    let mut req =
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
            .to_vec();
    for i in 0..2_000 {
        req.extend(format!("x-trailer-{i}: {}\r\n", "t".repeat(50)).as_bytes());
    }
    let _ = http::try_send(&mut conn, &req).await;
    let res = http::read_response(&mut conn).await.expect("an answer");
    assert_eq!((res.status, res.closes()), (400, true));
    healthz_answers(bin.addr).await;
}
