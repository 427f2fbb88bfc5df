//! `--access-log`: one line per request, with the fields it promises, and
//! none without the flag.

mod support;

use std::time::Duration;

use support::binary::{Binary, field};
use support::http;

const EXIT: Duration = Duration::from_secs(20);

/// With `--access-log`, each request gets one line once it is over, with
/// its method, path, status, duration, response bytes, peer and protocol.
#[tokio::test]
async fn each_request_gets_one_line_with_its_fields() {
    let mut bin = Binary::start(&["--access-log"]);
    let items = http::get(bin.addr, "/api/items").await;
    assert_eq!(items.status, 200);
    assert_eq!(http::get(bin.addr, "/nowhere").await.status, 404);
    let created = http::request(bin.addr, "POST", "/api/items", Some(r#"{"name":"logged"}"#)).await;
    assert_eq!(created.status, 201);

    let list = bin.wait_for_log("path=/api/items status=200", EXIT);
    assert!(list.contains("method=GET"), "{list}");
    assert_eq!(
        field(&list, "bytes"),
        items.body.len().to_string(),
        "{list}"
    );
    assert_eq!(field(&list, "protocol"), "HTTP/1.1", "{list}");
    assert!(field(&list, "peer").starts_with("127.0.0.1:"), "{list}");
    assert!(field(&list, "duration_us").parse::<u64>().is_ok(), "{list}");
    assert_eq!(field(&list, "complete"), "true", "{list}");
    let missing = bin.wait_for_log("path=/nowhere", EXIT);
    assert!(missing.contains("status=404"), "{missing}");
    let post = bin.wait_for_log("method=POST", EXIT);
    assert!(post.contains("status=201"), "{post}");
    assert_eq!(bin.count_logs(" access: "), 3, "{:#?}", bin.logs());

    bin.signal(libc::SIGTERM);
    assert_eq!(bin.exit_code_within(EXIT), 0);
}

/// Without the flag (the default) there is no access line at all.
#[tokio::test]
async fn without_the_flag_no_request_is_logged() {
    let mut bin = Binary::start(&[]);
    assert_eq!(http::get(bin.addr, "/api/items").await.status, 200);
    bin.signal(libc::SIGTERM);
    assert_eq!(bin.exit_code_within(EXIT), 0);
    bin.wait_for_log("shutdown report", EXIT);
    assert_eq!(bin.count_logs(" access: "), 0, "{:#?}", bin.logs());
}
