//! The HTTP server's protocol core over a real document root on disk: files, directories, dotfiles,
//! FIFOs and symbolic links inside and outside the root, each request parsed with `http::parse` and
//! answered by `Site::respond` (or `http::reject`), checking status, head fields and body.

#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use iomux::http::{Body, Config, Parse, Response, Site, Status, parse, reject};

/// A document root under a temporary directory, with a sibling directory outside the root.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir_all(outside.join("dir")).unwrap();
        fs::write(outside.join("secret.txt"), "outside secret\n").unwrap();
        fs::write(outside.join("dir/x.txt"), "outside x\n").unwrap();

        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(root.join("docs/b")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::create_dir_all(root.join("odd/index.html")).unwrap();
        fs::write(root.join("index.html"), "<h1>home</h1>\n").unwrap();
        fs::write(root.join("hello.txt"), "hello world\n").unwrap();
        fs::write(root.join("image.png"), b"\x89PNG\r\n\x1a\n").unwrap();
        fs::write(root.join("big.bin"), vec![7u8; 200 * 1024]).unwrap();
        fs::write(root.join("empty.txt"), "").unwrap();
        fs::write(root.join("sub/index.html"), "<h1>sub</h1>\n").unwrap();
        fs::write(root.join("sub/page.html"), "<p>page</p>\n").unwrap();
        fs::write(root.join("docs/a.txt"), "aaa").unwrap();
        fs::write(root.join("docs/b/c.txt"), "c").unwrap();
        fs::write(root.join("docs/.hidden"), "h").unwrap();
        fs::write(root.join("docs/we<ird>&\"name.txt"), "w").unwrap();
        fs::write(root.join("docs/sp ace.txt"), "s").unwrap();
        fs::write(root.join("odd/index.html/inner.txt"), "i").unwrap();
        fs::write(root.join(".env"), "SECRET=1\n").unwrap();
        fs::write(root.join(".git/config"), "[core]\n").unwrap();
        fs::write(root.join("%2e"), "literally percent-2e\n").unwrap();

        symlink("hello.txt", root.join("link-in")).unwrap();
        symlink(root.join("hello.txt"), root.join("link-abs-in")).unwrap();
        symlink("../sub", root.join("docs/up-link")).unwrap();
        symlink("../outside/secret.txt", root.join("link-out")).unwrap();
        symlink(outside.join("secret.txt"), root.join("link-out-abs")).unwrap();
        symlink("../outside/dir", root.join("dir-out")).unwrap();
        symlink("nowhere", root.join("broken")).unwrap();
        symlink("../../outside/secret.txt", root.join("docs/escape")).unwrap();
        let status = Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap();
        assert!(status.success());
        Tree { _dir: dir, root }
    }

    fn site(&self) -> Site {
        Site::new(Config::new(&self.root)).unwrap()
    }

    fn site_with(&self, change: impl FnOnce(&mut Config)) -> Site {
        let mut config = Config::new(&self.root);
        change(&mut config);
        Site::new(config).unwrap()
    }
}

/// One answered request: the response, its head as text and its whole body.
#[derive(Debug)]
struct Answer {
    response: Response,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn code(&self) -> u16 {
        self.response.status.code()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (field, value) = line.split_once(": ")?;
            field.eq_ignore_ascii_case(name).then_some(value)
        })
    }

    fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Parses `raw` as one request and answers it as a connection would.
fn ask(site: &Site, raw: &[u8]) -> Answer {
    let mut out = Vec::new();
    let response = match parse(raw) {
        Ok(Parse::Complete(request)) => site.respond(&request, &mut out),
        Ok(Parse::Partial) => panic!("incomplete test request {raw:?}"),
        Err(error) => reject(&error, raw, &mut out),
    };
    split(response, out)
}

fn split(response: Response, mut out: Vec<u8>) -> Answer {
    let head_end = out
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a head ends with an empty line")
        + 4;
    if let Body::File(file) = &response.body {
        file.read_into(&mut out).unwrap();
    }
    let body = out.split_off(head_end);
    let head = String::from_utf8(out).unwrap();
    assert_eq!(body.len() as u64, response.body_len, "body_len for {head}");
    let length = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("Content-Length: "));
    if let Some(length) = length
        && response.body_len > 0
    {
        assert_eq!(length.parse::<u64>().unwrap(), response.body_len);
    }
    Answer {
        response,
        head,
        body,
    }
}

fn get(site: &Site, target: &str) -> Answer {
    ask(
        site,
        format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

fn get_with(site: &Site, target: &str, fields: &str) -> Answer {
    ask(
        site,
        format!("GET {target} HTTP/1.1\r\nHost: test\r\n{fields}\r\n").as_bytes(),
    )
}

#[test]
fn root_serves_index_html_with_full_head() {
    let tree = Tree::new();
    let answer = get(&tree.site(), "/");
    assert_eq!(answer.code(), 200);
    assert_eq!(answer.body_text(), "<h1>home</h1>\n");
    assert!(answer.head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(
        answer.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(answer.header("Content-Length"), Some("14"));
    assert_eq!(answer.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(answer.header("Server"), Some("iomux"));
    assert!(httpdate::parse_http_date(answer.header("Date").unwrap()).is_ok());
    let modified = fs::metadata(tree.root.join("index.html"))
        .unwrap()
        .modified()
        .unwrap();
    let last_modified = httpdate::parse_http_date(answer.header("Last-Modified").unwrap()).unwrap();
    assert!(modified.duration_since(last_modified).unwrap().as_secs() < 1);
    let etag = answer.header("ETag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with("-e\""),
        "strong tag ending in the size: {etag}"
    );
    assert!(answer.response.keep_alive);
    assert_eq!(answer.header("Connection"), None);
}

#[test]
fn files_get_their_content_type() {
    let tree = Tree::new();
    let site = tree.site();
    let answer = get(&site, "/hello.txt");
    assert_eq!(answer.body_text(), "hello world\n");
    assert_eq!(
        answer.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    let answer = get(&site, "/image.png");
    assert_eq!(answer.header("Content-Type"), Some("image/png"));
    assert_eq!(answer.body, b"\x89PNG\r\n\x1a\n");
}

#[test]
fn head_has_the_same_head_without_body() {
    let tree = Tree::new();
    let site = tree.site();
    let get = get(&site, "/hello.txt");
    let head = ask(&site, b"HEAD /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(head.code(), 200);
    assert!(head.body.is_empty());
    assert!(matches!(head.response.body, Body::Buffered));
    let without_date = |text: &str| {
        text.split("\r\n")
            .filter(|line| !line.starts_with("Date: "))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    assert_eq!(without_date(&head.head), without_date(&get.head));

    let missing = ask(&site, b"HEAD /missing HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(missing.code(), 404);
    assert!(missing.body.is_empty());
    assert_ne!(missing.header("Content-Length"), Some("0"));
}

#[test]
fn large_files_come_back_as_a_file_body() {
    let tree = Tree::new();
    let answer = get(&tree.site(), "/big.bin");
    assert_eq!(answer.code(), 200);
    match &answer.response.body {
        Body::File(file) => {
            assert_eq!(file.offset, 0);
            assert_eq!(file.len, 200 * 1024);
        }
        other => panic!("expected a file body, got {other:?}"),
    }
    assert_eq!(answer.body.len(), 200 * 1024);
    assert!(answer.body.iter().all(|&byte| byte == 7));
}

#[test]
fn empty_files_have_no_body_source() {
    let tree = Tree::new();
    let site = tree.site();
    let answer = get(&site, "/empty.txt");
    assert_eq!(answer.code(), 200);
    assert_eq!(answer.header("Content-Length"), Some("0"));
    assert!(matches!(answer.response.body, Body::Buffered));
    let answer = get_with(&site, "/empty.txt", "Range: bytes=0-\r\n");
    assert_eq!(answer.code(), 416);
    assert_eq!(answer.header("Content-Range"), Some("bytes */0"));
}

#[test]
fn directories_without_slash_redirect_keeping_the_query() {
    let tree = Tree::new();
    let site = tree.site();
    let answer = get(&site, "/sub");
    assert_eq!(answer.code(), 301);
    assert_eq!(answer.header("Location"), Some("/sub/"));
    assert!(answer.body_text().contains("href=\"/sub/\""));
    assert_eq!(
        get(&site, "/sub?a=1&b=<x>").header("Location"),
        Some("/sub/?a=1&b=<x>")
    );
    assert!(
        get(&site, "/sub?a=1&b=<x>")
            .body_text()
            .contains("href=\"/sub/?a=1&amp;b=&lt;x&gt;\"")
    );
    assert_eq!(
        get(&site, "//sub").header("Location"),
        Some("/sub/"),
        "never a protocol-relative //host redirect"
    );
    assert_eq!(get(&site, "/docs/b").header("Location"), Some("/docs/b/"));
    assert_eq!(
        get(&site, "http://test/sub").header("Location"),
        Some("/sub/")
    );
    assert_eq!(get(&site, "/sub/").body_text(), "<h1>sub</h1>\n");
    assert_eq!(get(&site, "/sub/page.html").body_text(), "<p>page</p>\n");
    let head = ask(&site, b"HEAD /sub HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(head.code(), 301);
    assert!(head.body.is_empty());
}

#[test]
fn directories_without_index_are_404_unless_listing() {
    let tree = Tree::new();
    let answer = get(&tree.site(), "/docs/");
    assert_eq!(answer.code(), 404);
    assert!(answer.response.keep_alive);
    assert_eq!(get(&tree.site(), "/hello.txt/").code(), 404);
}

#[test]
fn listing_is_sorted_escaped_encoded_and_confined() {
    let tree = Tree::new();
    let site = tree.site_with(|config| config.listing = true);
    let answer = get(&site, "/docs/");
    assert_eq!(answer.code(), 200);
    assert_eq!(
        answer.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let html = answer.body_text();
    assert!(html.contains("<title>Index of /docs/</title>"));
    assert!(html.contains("<a href=\"../\">../</a>"));
    let b = html.find("href=\"b/\"").unwrap();
    let up = html.find("href=\"up-link/\"").unwrap();
    let a = html.find("href=\"a.txt\"").unwrap();
    let space = html.find("href=\"sp%20ace.txt\"").unwrap();
    let weird = html
        .find("href=\"we%3Cird%3E%26%22name.txt\">we&lt;ird&gt;&amp;&quot;name.txt</a>")
        .unwrap();
    assert!(b < up && up < a && a < space && space < weird, "{html}");
    assert!(html.contains("<td>3</td>"), "a.txt's size: {html}");
    assert!(!html.contains(".hidden"));
    assert!(
        !html.contains("escape"),
        "a link out of the root is not listed"
    );
    assert!(html.contains(" GMT</td>"));

    let root = get(&site, "/");
    assert_eq!(root.body_text(), "<h1>home</h1>\n", "index.html wins");

    let shown = tree.site_with(|config| {
        config.listing = true;
        config.show_hidden = true;
    });
    assert!(
        get(&shown, "/docs/")
            .body_text()
            .contains("href=\".hidden\"")
    );

    let followed = tree.site_with(|config| {
        config.listing = true;
        config.follow_symlinks = true;
    });
    assert!(
        get(&followed, "/docs/")
            .body_text()
            .contains("href=\"escape\"")
    );
}

#[test]
fn listing_of_the_root_has_no_parent_and_skips_what_is_not_served() {
    let tree = Tree::new();
    fs::remove_file(tree.root.join("index.html")).unwrap();
    let site = tree.site_with(|config| config.listing = true);
    let html = get(&site, "/").body_text().to_owned();
    assert!(html.contains("<title>Index of /</title>"));
    assert!(!html.contains("href=\"../\""));
    assert!(html.contains("href=\"link-in\""));
    assert!(html.contains("href=\"link-abs-in\""));
    assert!(html.contains("href=\"%252e\""));
    for absent in ["link-out", "dir-out", "broken", "fifo", ".env", ".git"] {
        assert!(
            !html.contains(&format!("href=\"{absent}")),
            "{absent} listed"
        );
    }
    let head = ask(&site, b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(head.code(), 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length").unwrap(),
        html.len().to_string()
    );
}

#[test]
fn an_index_html_directory_is_no_index() {
    let tree = Tree::new();
    assert_eq!(get(&tree.site(), "/odd/").code(), 404);
    let site = tree.site_with(|config| config.listing = true);
    assert!(
        get(&site, "/odd/")
            .body_text()
            .contains("href=\"index.html/\"")
    );
}

#[test]
fn missing_files_are_404_and_keep_the_connection() {
    let tree = Tree::new();
    let answer = get(&tree.site(), "/missing.html");
    assert_eq!(answer.code(), 404);
    assert!(answer.response.keep_alive);
    assert!(answer.body_text().contains("404 Not Found"));
    assert_eq!(get(&tree.site(), "/missing/deeper/").code(), 404);
}

#[test]
fn dotfiles_are_hidden_unless_shown() {
    let tree = Tree::new();
    let site = tree.site();
    assert_eq!(get(&site, "/.env").code(), 404);
    assert_eq!(get(&site, "/.git/config").code(), 404);
    assert_eq!(get(&site, "/%2eenv").code(), 404);
    let shown = tree.site_with(|config| config.show_hidden = true);
    assert_eq!(get(&shown, "/.env").body_text(), "SECRET=1\n");
    assert_eq!(get(&shown, "/.git/config").body_text(), "[core]\n");
}

#[test]
fn paths_that_climb_or_smuggle_are_400() {
    let tree = Tree::new();
    let site = tree.site();
    for target in [
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/sub/../../outside/secret.txt",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/..%2foutside/secret.txt",
        "/sub%2f..%2f..%2foutside",
        "/hello.txt%00.png",
        "/sub\\..\\hello.txt",
        "/sub%5c..%5chello.txt",
        "/bad%zzescape",
        "/trailing%",
    ] {
        let answer = get(&site, target);
        assert_eq!(answer.code(), 400, "{target}");
        assert!(answer.response.keep_alive, "{target}");
    }
}

#[test]
fn dot_segments_resolve_inside_the_root() {
    let tree = Tree::new();
    let site = tree.site();
    assert_eq!(get(&site, "/sub/../hello.txt").body_text(), "hello world\n");
    assert_eq!(
        get(&site, "/sub/%2e%2e/hello.txt").body_text(),
        "hello world\n"
    );
    assert_eq!(get(&site, "//hello.txt").body_text(), "hello world\n");
    assert_eq!(get(&site, "/./hello.txt").body_text(), "hello world\n");
    assert_eq!(
        get(&site, "/hello.txt?x=../../etc/passwd").body_text(),
        "hello world\n"
    );
    assert_eq!(
        get(&site, "http://test/hello.txt").body_text(),
        "hello world\n"
    );
}

#[test]
fn double_encoding_names_a_literal_percent_file() {
    let tree = Tree::new();
    let answer = get(&tree.site(), "/%252e");
    assert_eq!(answer.code(), 200);
    assert_eq!(answer.body_text(), "literally percent-2e\n");
}

#[test]
fn symlinks_inside_the_root_are_served() {
    let tree = Tree::new();
    let site = tree.site();
    assert_eq!(get(&site, "/link-in").body_text(), "hello world\n");
    assert_eq!(
        get(&site, "/link-abs-in").body_text(),
        "hello world\n",
        "an absolute link back into the root"
    );
    assert_eq!(
        get(&site, "/docs/up-link/page.html").body_text(),
        "<p>page</p>\n"
    );
}

#[test]
fn symlinks_leading_out_are_404_unless_followed() {
    let tree = Tree::new();
    let site = tree.site();
    for target in [
        "/link-out",
        "/link-out-abs",
        "/dir-out/x.txt",
        "/dir-out/",
        "/docs/escape",
    ] {
        let answer = get(&site, target);
        assert_eq!(answer.code(), 404, "{target}");
        assert!(!answer.body_text().contains("outside"), "{target}");
    }
    assert_eq!(get(&site, "/broken").code(), 404);

    let followed = tree.site_with(|config| config.follow_symlinks = true);
    assert_eq!(get(&followed, "/link-out").body_text(), "outside secret\n");
    assert_eq!(
        get(&followed, "/link-out-abs").body_text(),
        "outside secret\n"
    );
    assert_eq!(get(&followed, "/dir-out/x.txt").body_text(), "outside x\n");
    assert_eq!(get(&followed, "/broken").code(), 404);
    assert_eq!(
        get(&followed, "/../outside/secret.txt").code(),
        400,
        "following links never allows climbing with .."
    );
}

#[test]
fn a_root_reached_through_a_symlink_works() {
    let tree = Tree::new();
    let alias = tree.root.with_file_name("alias");
    symlink(&tree.root, &alias).unwrap();
    let site = Site::new(Config::new(&alias)).unwrap();
    assert_eq!(get(&site, "/hello.txt").body_text(), "hello world\n");
    assert_eq!(get(&site, "/link-abs-in").body_text(), "hello world\n");
    assert_eq!(get(&site, "/link-out").code(), 404);
}

#[test]
fn fifos_and_other_special_files_are_404_without_blocking() {
    let tree = Tree::new();
    assert_eq!(get(&tree.site(), "/fifo").code(), 404);
    let followed = tree.site_with(|config| config.follow_symlinks = true);
    assert_eq!(get(&followed, "/fifo").code(), 404);
}

#[test]
fn single_ranges_are_206() {
    let tree = Tree::new();
    let site = tree.site();
    let cases = [
        ("bytes=0-4", "hello", "bytes 0-4/12"),
        ("bytes=6-", "world\n", "bytes 6-11/12"),
        ("bytes=-6", "world\n", "bytes 6-11/12"),
        ("bytes=6-100", "world\n", "bytes 6-11/12"),
        ("bytes=-100", "hello world\n", "bytes 0-11/12"),
        ("bytes=11-11", "\n", "bytes 11-11/12"),
    ];
    for (range, body, content_range) in cases {
        let answer = get_with(&site, "/hello.txt", &format!("Range: {range}\r\n"));
        assert_eq!(answer.code(), 206, "{range}");
        assert_eq!(answer.body_text(), body, "{range}");
        assert_eq!(answer.header("Content-Range"), Some(content_range));
        assert_eq!(
            answer.header("Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert!(answer.header("ETag").is_some());
    }
    let answer = get_with(&site, "/big.bin", "Range: bytes=1000-1999\r\n");
    match &answer.response.body {
        Body::File(file) => assert_eq!((file.offset, file.len), (1000, 1000)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsatisfiable_ranges_are_416() {
    let tree = Tree::new();
    let site = tree.site();
    for range in ["bytes=12-", "bytes=100-200", "bytes=-0"] {
        let answer = get_with(&site, "/hello.txt", &format!("Range: {range}\r\n"));
        assert_eq!(answer.code(), 416, "{range}");
        assert_eq!(answer.header("Content-Range"), Some("bytes */12"));
        assert!(answer.response.keep_alive);
    }
}

#[test]
fn several_or_invalid_ranges_get_the_whole_file() {
    let tree = Tree::new();
    let site = tree.site();
    for range in [
        "bytes=0-1,3-4",
        "bytes=0-0,-1",
        "bytes=5-2",
        "bytes=x-y",
        "lines=0-1",
        "bytes=100-200,300-400",
    ] {
        let answer = get_with(&site, "/hello.txt", &format!("Range: {range}\r\n"));
        assert_eq!(answer.code(), 200, "{range}");
        assert_eq!(answer.body_text(), "hello world\n");
        assert_eq!(answer.header("Content-Range"), None);
    }
}

#[test]
fn head_ignores_range() {
    let tree = Tree::new();
    let answer = ask(
        &tree.site(),
        b"HEAD /hello.txt HTTP/1.1\r\nHost: test\r\nRange: bytes=0-4\r\n\r\n",
    );
    assert_eq!(answer.code(), 200);
    assert_eq!(answer.header("Content-Length"), Some("12"));
}

#[test]
fn if_range_honours_matching_validators_only() {
    let tree = Tree::new();
    let site = tree.site();
    let full = get(&site, "/hello.txt");
    let etag = full.header("ETag").unwrap().to_owned();
    let last_modified = full.header("Last-Modified").unwrap().to_owned();
    let with = |if_range: &str| {
        get_with(
            &site,
            "/hello.txt",
            &format!("Range: bytes=0-4\r\nIf-Range: {if_range}\r\n"),
        )
    };
    assert_eq!(with(&etag).code(), 206);
    assert_eq!(with(&etag).body_text(), "hello");
    assert_eq!(with("\"other\"").code(), 200);
    assert_eq!(
        with(&format!("W/{etag}")).code(),
        200,
        "weak tags never match"
    );
    assert_eq!(with(&last_modified).code(), 206);
    assert_eq!(with("Thu, 01 Jan 1970 00:00:00 GMT").code(), 200);
    assert_eq!(with("garbage").code(), 200);
    let unsatisfiable_but_stale = get_with(
        &site,
        "/hello.txt",
        "Range: bytes=100-\r\nIf-Range: \"other\"\r\n",
    );
    assert_eq!(unsatisfiable_but_stale.code(), 200);
}

#[test]
fn conditional_requests_give_304() {
    let tree = Tree::new();
    let site = tree.site();
    let full = get(&site, "/hello.txt");
    let etag = full.header("ETag").unwrap().to_owned();
    let last_modified = full.header("Last-Modified").unwrap().to_owned();

    let answer = get_with(&site, "/hello.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(answer.code(), 304);
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("ETag"), Some(etag.as_str()));
    assert_eq!(answer.header("Last-Modified"), Some(last_modified.as_str()));
    assert_eq!(answer.header("Content-Length"), None);
    assert!(answer.response.keep_alive);

    let cases = [
        (format!("If-None-Match: \"x\", W/{etag}\r\n"), 304),
        ("If-None-Match: *\r\n".to_owned(), 304),
        ("If-None-Match: \"x\"\r\n".to_owned(), 200),
        (format!("If-Modified-Since: {last_modified}\r\n"), 304),
        (
            "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n".to_owned(),
            304,
        ),
        (
            "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n".to_owned(),
            200,
        ),
        (
            format!("If-None-Match: \"x\"\r\nIf-Modified-Since: {last_modified}\r\n"),
            200,
        ),
        (
            format!(
                "If-None-Match: {etag}\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
            ),
            304,
        ),
        (
            format!("If-None-Match: {etag}\r\nRange: bytes=0-1\r\n"),
            304,
        ),
    ];
    for (fields, code) in cases {
        assert_eq!(
            get_with(&site, "/hello.txt", &fields).code(),
            code,
            "{fields}"
        );
    }
    let head = ask(
        &site,
        format!("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes(),
    );
    assert_eq!(head.code(), 304);
}

#[test]
fn a_replaced_file_is_never_served_stale() {
    let tree = Tree::new();
    let site = tree.site();
    let before = get(&site, "/hello.txt");
    let etag = before.header("ETag").unwrap().to_owned();
    let replacement = tree.root.join("hello.new");
    fs::write(&replacement, "a different, longer greeting\n").unwrap();
    fs::rename(&replacement, tree.root.join("hello.txt")).unwrap();
    let after = get_with(&site, "/hello.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(after.code(), 200);
    assert_eq!(after.body_text(), "a different, longer greeting\n");
    assert_ne!(after.header("ETag"), Some(etag.as_str()));
}

#[test]
fn keep_alive_and_connection_close() {
    let tree = Tree::new();
    let site = tree.site();
    let answer = ask(&site, b"GET /hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!(answer.code(), 200);
    assert!(!answer.response.keep_alive);
    assert_eq!(answer.header("Connection"), Some("close"));
    let answer = ask(
        &site,
        b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert!(answer.response.keep_alive);
    assert_eq!(answer.header("Connection"), Some("keep-alive"));
    let answer = ask(
        &site,
        b"GET /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.code(), 404);
    assert!(!answer.response.keep_alive);
    assert_eq!(answer.header("Connection"), Some("close"));

    let raw = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    let Ok(Parse::Complete(mut request)) = parse(raw) else {
        panic!("complete request expected")
    };
    request.disable_keep_alive();
    let mut out = Vec::new();
    let answer = split(site.respond(&request, &mut out), out);
    assert!(!answer.response.keep_alive);
    assert_eq!(answer.header("Connection"), Some("close"));
}

#[test]
fn pipelined_requests_are_answered_in_order_into_one_buffer() {
    let tree = Tree::new();
    let site = tree.site();
    let input = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz\
                  HEAD /sub/page.html HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /missing HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut rest = &input[..];
    let mut out = Vec::new();
    let mut statuses = Vec::new();
    while !rest.is_empty() {
        let Ok(Parse::Complete(request)) = parse(rest) else {
            panic!("complete request expected")
        };
        let response = site.respond(&request, &mut out);
        if let Body::File(file) = &response.body {
            file.read_into(&mut out).unwrap();
        }
        statuses.push(response.status);
        let consumed = request.head_len() + request.body_len() as usize;
        rest = &rest[consumed..];
    }
    assert_eq!(
        statuses,
        [Status::Ok, Status::Ok, Status::NotFound],
        "the body xyz was skipped, not parsed as a request"
    );
    let text = String::from_utf8(out).unwrap();
    let first = text.find("hello world\n").unwrap();
    let second = text[first..].find("HTTP/1.1 200 OK").unwrap();
    assert!(text[first + second..].contains("HTTP/1.1 404 Not Found"));
}

#[test]
fn parse_errors_are_rejected_with_their_status_and_close() {
    let tree = Tree::new();
    let site = tree.site();
    let mut long = b"GET /".to_vec();
    long.resize(5000, b'a');
    let mut large = b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
    large.resize(9000, b'b');
    let cases: [(&[u8], u16); 8] = [
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab",
            405,
        ),
        (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n",
            413,
        ),
        (&long, 414),
        (&large, 431),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400),
    ];
    for (raw, code) in cases {
        let answer = ask(&site, raw);
        assert_eq!(
            answer.code(),
            code,
            "{}",
            String::from_utf8_lossy(&raw[..raw.len().min(20)])
        );
        assert!(!answer.response.keep_alive);
        assert_eq!(answer.header("Connection"), Some("close"));
        assert!(answer.body_text().contains(&format!("<h1>{code} ")));
    }
    let answer = ask(&site, b"PUT /x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(answer.header("Allow"), Some("GET, HEAD"));
}

#[test]
fn the_site_can_be_shared_by_threads() {
    let tree = Tree::new();
    let site = std::sync::Arc::new(tree.site());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let site = std::sync::Arc::clone(&site);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    assert_eq!(get(&site, "/hello.txt").body_text(), "hello world\n");
                    assert_eq!(get(&site, "/link-out").code(), 404);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn the_root_must_be_a_directory() {
    let tree = Tree::new();
    assert!(Site::new(Config::new(tree.root.join("hello.txt"))).is_err());
    assert!(Site::new(Config::new(Path::new("/nonexistent-iomux-root"))).is_err());
}
