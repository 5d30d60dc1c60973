//! What a well-behaved client gets: files with their heads, HEAD, keep-alive and HTTP/1.0, 304s,
//! ranges, directories (redirect, index, listing), path confinement, dotfiles and symbolic links.

use crate::support::{Server, Site, big_content, limit_content, request};

#[test]
fn files_come_with_their_full_head() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    let response = client.get("/a.txt", &[]);
    assert_eq!(response.status_line, "HTTP/1.1 200 OK");
    assert_eq!(response.body, b"hello\n");
    assert_eq!(response.header("content-length"), Some("6"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    let date = response.header("date").expect("Date");
    httpdate_check(date);
    httpdate_check(response.header("last-modified").expect("Last-Modified"));
    let etag = response.header("etag").expect("ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let css = client.get("/style.css", &[]);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let png = client.get("/logo.png", &[]);
    assert_eq!(png.header("content-type"), Some("image/png"));
    let index = client.get("/", &[]);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(index.text().contains("<h1>home</h1>"));
}

/// A date in IMF-fixdate form, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn httpdate_check(date: &str) {
    assert_eq!(date.len(), 29, "{date}");
    assert!(date.ends_with(" GMT"), "{date}");
    assert_eq!(&date[3..5], ", ", "{date}");
}

#[test]
fn small_and_large_files_arrive_whole() {
    let site = Site::new();
    for flags in [&[][..], &["--no-sendfile"][..]] {
        let server = Server::start(&site.root(), flags);
        let mut client = server.connect();
        // Exactly at the small-file limit (one write), then above it (sendfile or read/write).
        assert_eq!(
            client.get("/limit.bin", &[]).body,
            limit_content(),
            "{flags:?}"
        );
        assert_eq!(client.get("/big.bin", &[]).body, big_content(), "{flags:?}");
        // The connection is still in step after a large body.
        assert_eq!(client.get("/a.txt", &[]).body, b"hello\n", "{flags:?}");
    }
}

#[test]
fn missing_files_are_404_and_keep_the_connection() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    let missing = client.get("/no/such/file", &[]);
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("404 Not Found"));
    assert_eq!(missing.header("connection"), None);
    assert_eq!(client.get("/a.txt", &[]).status, 200);
}

#[test]
fn head_gets_the_head_of_get_without_a_body() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    client.send(request("HEAD", "/big.bin", &[]).as_bytes());
    let head = client.response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("262144"));
    // Had a body been sent, the next response would not parse.
    let get = client.get("/a.txt", &[]);
    assert_eq!(get.status_line, "HTTP/1.1 200 OK");
    assert_eq!(get.body, b"hello\n");
    client.send(request("HEAD", "/missing", &[]).as_bytes());
    assert_eq!(client.response(true).status, 404);
    assert_eq!(client.get("/a.txt", &[]).status, 200);
}

#[test]
fn keep_alive_is_the_default_and_close_is_honoured() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    for _ in 0..5 {
        assert_eq!(client.get("/a.txt", &[]).status, 200);
    }
    let last = client.get("/a.txt", &["Connection: close"]);
    assert_eq!(last.header("connection"), Some("close"));
    client.expect_closed();
}

#[test]
fn http_1_0_closes_unless_it_asks_for_keep_alive() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    client.send(b"GET /a.txt HTTP/1.0\r\n\r\n");
    let response = client.response(false);
    assert_eq!(response.body, b"hello\n");
    assert_eq!(response.header("connection"), Some("close"));
    client.expect_closed();

    let mut client = server.connect();
    for _ in 0..3 {
        client.send(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let response = client.response(false);
        assert_eq!(response.header("connection"), Some("keep-alive"));
        assert_eq!(response.body, b"hello\n");
    }
}

#[test]
fn conditional_requests_give_304() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    let first = client.get("/a.txt", &[]);
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();

    let same = client.get("/a.txt", &[&format!("If-None-Match: {etag}")]);
    assert_eq!(same.status, 304);
    assert!(same.body.is_empty());
    assert_eq!(same.header("etag"), Some(etag.as_str()));
    let weak = client.get("/a.txt", &[&format!("If-None-Match: \"x\", W/{etag}")]);
    assert_eq!(weak.status, 304, "weak comparison in a list");
    assert_eq!(client.get("/a.txt", &["If-None-Match: *"]).status, 304);
    assert_eq!(
        client.get("/a.txt", &["If-None-Match: \"other\""]).status,
        200
    );

    let since = client.get("/a.txt", &[&format!("If-Modified-Since: {modified}")]);
    assert_eq!(since.status, 304);
    let later = client.get(
        "/a.txt",
        &["If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT"],
    );
    assert_eq!(later.status, 304, "a later date is also not modified since");
    let earlier = client.get(
        "/a.txt",
        &["If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"],
    );
    assert_eq!(earlier.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let both = client.get(
        "/a.txt",
        &[
            "If-None-Match: \"other\"",
            &format!("If-Modified-Since: {modified}"),
        ],
    );
    assert_eq!(both.status, 200);
    assert_eq!(both.body, b"hello\n");
}

#[test]
fn ranges_give_206_416_or_the_whole_file() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let big = big_content();
    let mut client = server.connect();

    let part = client.get("/big.bin", &["Range: bytes=1000-1999"]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/262144"));
    assert_eq!(part.body, &big[1000..2000]);
    let tail = client.get("/big.bin", &["Range: bytes=-10"]);
    assert_eq!(tail.body, &big[big.len() - 10..]);
    let from = client.get("/big.bin", &["Range: bytes=200000-"]);
    assert_eq!(from.status, 206);
    assert_eq!(
        from.body,
        &big[200_000..],
        "a large range goes through sendfile"
    );

    let beyond = client.get("/big.bin", &["Range: bytes=300000-"]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */262144"));
    let several = client.get("/big.bin", &["Range: bytes=0-0,5-5"]);
    assert_eq!(several.status, 200, "several ranges: the whole file");
    assert_eq!(several.body.len(), big.len());

    let etag = several.header("etag").unwrap().to_owned();
    let honoured = client.get(
        "/big.bin",
        &["Range: bytes=0-9", &format!("If-Range: {etag}")],
    );
    assert_eq!(honoured.status, 206);
    let stale = client.get("/big.bin", &["Range: bytes=0-9", "If-Range: \"stale\""]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body.len(), big.len());
}

#[test]
fn directories_redirect_serve_their_index_or_list() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    let redirect = client.get("/sub?x=1", &[]);
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/sub/?x=1"));
    assert_eq!(client.get("/sub/", &[]).text(), "<h1>sub</h1>\n");
    assert_eq!(
        client.get("/docs/", &[]).status,
        404,
        "no listing without --listing"
    );

    let server = Server::start(&site.root(), &["--listing"]);
    let mut client = server.connect();
    let listing = client.get("/docs/", &[]);
    assert_eq!(listing.status, 200);
    assert_eq!(
        listing.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = listing.text();
    let positions: Vec<usize> = [
        "nested/",
        "%3Cb%3E%26.txt",
        "a.txt",
        "b.txt",
        "caf%C3%A9.txt",
        "space%20name.txt",
    ]
    .iter()
    .map(|link| {
        html.find(&format!("href=\"{link}\""))
            .unwrap_or_else(|| panic!("no link {link} in {html}"))
    })
    .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "sorted: {html}"
    );
    assert!(
        html.contains("&lt;b&gt;&amp;.txt"),
        "names are escaped: {html}"
    );
    assert!(!html.contains("<b>&"), "no raw markup from names: {html}");
    assert!(!html.contains(".secret"), "dotfiles are not listed: {html}");
    let link = client.get("/docs/caf%C3%A9.txt", &[]);
    assert_eq!(link.text(), "coffee\n", "the listing's links work");
}

#[test]
fn paths_cannot_leave_the_root() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    for (target, status) in [
        ("/../outside/secret.txt", 400),
        ("/docs/../../outside/secret.txt", 400),
        ("/%2e%2e/outside/secret.txt", 400),
        ("/%2E%2E/outside/secret.txt", 400),
        ("/docs/%2e%2e/%2e%2e/outside/secret.txt", 400),
        ("/..%2foutside/secret.txt", 400),
        ("/docs%2f..%2f..%2foutside/secret.txt", 400),
        ("/docs/..%5c..%5coutside", 400),
        ("/a.txt%00.html", 400),
        ("/%zz", 400),
        ("/docs/../a.txt", 200),
        ("/docs/%2e%2e/a.txt", 200),
        ("/./a.txt", 200),
        ("//a.txt", 200),
        ("/a.txt?x=../../etc/passwd", 200),
        ("http://evil.example/a.txt", 200),
        ("/%252e", 200),
    ] {
        let response = client.get(target, &[]);
        assert_eq!(response.status, status, "{target}");
        assert!(!response.text().contains("outside the root"), "{target}");
        if status == 400 {
            client = server.connect();
        }
    }
    assert_eq!(client.get("/%252e", &[]).text(), "percent two e\n");
}

#[test]
fn dotfiles_are_hidden_unless_shown() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    for target in ["/.hidden", "/.git/config", "/docs/.secret", "/%2ehidden"] {
        assert_eq!(client.get(target, &[]).status, 404, "{target}");
    }
    let server = Server::start(&site.root(), &["--show-hidden"]);
    let mut client = server.connect();
    assert_eq!(client.get("/.hidden", &[]).text(), "hidden\n");
    assert_eq!(client.get("/.git/config", &[]).status, 200);
}

#[test]
fn symlinks_out_of_the_root_are_404_unless_followed() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    assert_eq!(client.get("/inside-link", &[]).text(), "hello\n");
    assert_eq!(client.get("/absolute-inside", &[]).text(), "hello\n");
    for target in ["/outside-link", "/outside-dir/secret.txt"] {
        let response = client.get(target, &[]);
        assert_eq!(response.status, 404, "{target}");
        assert!(!response.text().contains("outside the root"));
    }
    let server = Server::start(&site.root(), &["--follow-symlinks"]);
    let mut client = server.connect();
    assert_eq!(
        client.get("/outside-link", &[]).text(),
        "outside the root\n"
    );
    assert_eq!(
        client.get("/outside-dir/secret.txt", &[]).text(),
        "outside the root\n"
    );
}

#[test]
fn a_replaced_file_is_never_served_stale() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    let first = client.get("/a.txt", &[]);
    let path = site.write("a.txt.new", b"replaced content\n");
    std::fs::rename(path, site.root().join("a.txt")).unwrap();
    let second = client.get("/a.txt", &[]);
    assert_eq!(second.body, b"replaced content\n");
    assert_ne!(first.header("etag"), second.header("etag"));
}
