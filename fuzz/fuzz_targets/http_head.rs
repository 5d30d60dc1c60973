//! Fuzz target: HTTP request-head handling end to end. Bytes → `http::parse`; a complete head →
//! `Site::respond` against a real document root; an error → `http::reject`. Every response head is
//! checked by `iomux_fuzz::check_response` (status from the table, CRLFCRLF, well-formed fields,
//! truthful `Content-Length` and `Content-Range`, nothing from outside the root), and parsing must
//! give the same answer however the bytes are split across reads. Range and conditional fields come
//! from the dictionary `fuzz/http.dict` and the seeds in `fuzz/corpus/http_head/`.

#![no_main]

use iomux::http::{MAX_DISCARDED_BODY, MAX_HEAD, MAX_REQUEST_LINE, Method, Parse, parse, reject};
use iomux_fuzz::{check_response, fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let partial = check_bytes(data);
    // Most mutations lose the head's end; finish it once so that routing is reached as well.
    if partial {
        let mut finished = data.to_vec();
        finished.extend_from_slice(b"\r\n\r\n");
        check_bytes(&finished);
    }
});

/// Parses and answers `data`; returns whether the head was still partial.
fn check_bytes(data: &[u8]) -> bool {
    let fixture = fixture();
    match parse(data) {
        Ok(Parse::Partial) => {
            assert!(data.len() <= MAX_HEAD, "a partial head over the limit");
            true
        }
        Ok(Parse::Complete(request)) => {
            let head_len = request.head_len();
            assert!(head_len <= data.len() && head_len <= MAX_HEAD);
            assert!(request.path().starts_with('/'), "the path starts with /");
            assert!(request.body_len() <= MAX_DISCARDED_BODY);
            for cut in cuts(data.len()) {
                match parse(&data[..cut]) {
                    Ok(Parse::Partial) => assert!(cut < head_len, "partial after the head's end"),
                    Ok(Parse::Complete(again)) => assert_eq!(again.head_len(), head_len),
                    Err(error) => panic!("a prefix of {cut} bytes of a good head fails: {error}"),
                }
            }
            // Pick a site from the input's length, so every option is reached.
            let site = fixture.site(!data.len().is_multiple_of(2), data.len().is_multiple_of(3));
            let mut out = b"earlier response".to_vec();
            let response = site.respond(&request, &mut out);
            assert!(out.starts_with(b"earlier response"), "responses append");
            let head_only = request.method() == Method::Head;
            check_response(&out[16..], &response, head_only, &fixture.root);
            false
        }
        Err(error) => {
            let status = error.status().code();
            assert!(
                [400, 405, 413, 414, 431, 501].contains(&status),
                "parse gave status {status}"
            );
            assert!(error.closes_connection(), "a parse error closes");
            for cut in cuts(data.len()) {
                if let Err(early) = parse(&data[..cut]) {
                    assert_eq!(
                        early.status().code(),
                        status,
                        "{cut} bytes give {early}, all {} give {error}",
                        data.len()
                    );
                }
            }
            let mut out = Vec::new();
            let response = reject(&error, data, &mut out);
            assert_eq!(response.status, error.status());
            assert!(!response.keep_alive, "a rejected request closes");
            let request_line = data
                .iter()
                .position(|&byte| byte != b'\r' && byte != b'\n')
                .map_or(&[][..], |start| &data[start..]);
            let head_only = request_line.starts_with(b"HEAD ");
            check_response(&out, &response, head_only, &fixture.root);
            false
        }
    }
}

/// A few places to split an input of `len` bytes: near both ends, in between and around the limits.
fn cuts(len: usize) -> impl Iterator<Item = usize> {
    [
        1,
        len / 3,
        len / 2,
        len * 2 / 3,
        len.saturating_sub(2),
        len.saturating_sub(1),
        MAX_REQUEST_LINE + 1,
        MAX_HEAD,
        MAX_HEAD + 1,
    ]
    .into_iter()
    .filter(move |&cut| cut > 0 && cut < len)
}
