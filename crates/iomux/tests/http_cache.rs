//! The server's cache of small files never serves a stale file or one outside the root: files are
//! cached (each test waits until they have settled, so they are), then replaced, rewritten, deleted
//! or swapped for links and directories, and the next request must see the change. In process, over
//! real sockets, with one worker so every request meets the same cache.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use iomux::http::{Config, Options, Running, Server};

const HANG_GUARD: Duration = Duration::from_secs(30);

/// Longer than the cache's settle time (2 s): files written before it are cached when requested.
const SETTLED: Duration = Duration::from_millis(2_200);

/// A root holding `files`, and beside it `outside/` with a `secret.txt` of the same size as `a.txt`'s
/// content, all settled.
struct Site {
    base: tempfile::TempDir,
    running: Option<Running>,
    address: SocketAddr,
}

impl Site {
    fn new(files: &[(&str, &str)], follow_symlinks: bool) -> Site {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(base.path().join("outside/sub")).unwrap();
        fs::write(base.path().join("outside/secret.txt"), "secret!").unwrap();
        fs::write(base.path().join("outside/sub/a.txt"), "secret!").unwrap();
        for (name, content) in files {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        std::thread::sleep(SETTLED);
        let config = Config {
            quiet: true,
            follow_symlinks,
            ..Config::new(&root)
        };
        let running = Server::bind(config, Options::new("127.0.0.1:0".parse().unwrap()))
            .unwrap()
            .start()
            .unwrap();
        let address = running.local_addr();
        Site {
            base,
            running: Some(running),
            address,
        }
    }

    fn root(&self) -> std::path::PathBuf {
        self.base.path().join("root")
    }

    fn outside(&self) -> std::path::PathBuf {
        self.base.path().join("outside")
    }

    /// The status and body of `GET path`.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let length = head
            .split("\r\n")
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .unwrap();
        assert_eq!(length, body.len().to_string(), "{path}: {head}");
        (status, body.to_owned())
    }

    /// Requests `path` twice (the first fills the cache, the second hits it) and checks the body.
    fn cache(&self, path: &str, body: &str) {
        for _ in 0..2 {
            assert_eq!(self.get(path), (200, body.to_owned()), "{path}");
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown_handle().shutdown();
            running.wait().unwrap();
        }
    }
}

/// Replaces `path` with a new file of `content` by renaming over it, as deploy tools do.
fn rename_over(path: &Path, content: &str) {
    let temporary = path.with_extension("new");
    fs::write(&temporary, content).unwrap();
    fs::rename(&temporary, path).unwrap();
}

#[test]
fn a_file_renamed_over_is_served_new() {
    let site = Site::new(&[("a.txt", "version 1"), ("d/b.txt", "version 1")], false);
    site.cache("/a.txt", "version 1");
    site.cache("/d/b.txt", "version 1");
    rename_over(&site.root().join("a.txt"), "version 2");
    rename_over(&site.root().join("d/b.txt"), "version 2");
    assert_eq!(site.get("/a.txt"), (200, "version 2".to_owned()));
    assert_eq!(site.get("/d/b.txt"), (200, "version 2".to_owned()));
}

#[test]
fn a_file_rewritten_in_place_with_its_old_size_and_mtime_is_served_new() {
    let site = Site::new(&[("a.txt", "version 1"), ("d/b.txt", "version 1")], false);
    site.cache("/a.txt", "version 1");
    site.cache("/d/b.txt", "version 1");
    for name in ["a.txt", "d/b.txt"] {
        let path = site.root().join(name);
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, "version 2").unwrap();
        // The modification time put back: only the change time tells the rewrite.
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(modified).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), modified);
    }
    assert_eq!(site.get("/a.txt"), (200, "version 2".to_owned()));
    assert_eq!(site.get("/d/b.txt"), (200, "version 2".to_owned()));
}

#[test]
fn a_large_file_replaced_is_described_and_served_new() {
    let big = "b".repeat(100_000);
    let site = Site::new(
        &[("big.bin", big.as_str()), ("d/big.bin", big.as_str())],
        false,
    );
    for path in ["/big.bin", "/d/big.bin"] {
        site.cache(path, &big);
    }
    let bigger = "c".repeat(150_000);
    rename_over(&site.root().join("big.bin"), &bigger);
    fs::write(site.root().join("d/big.bin"), &bigger).unwrap();
    for path in ["/big.bin", "/d/big.bin"] {
        // A short body would fail the Content-Length check of `get`.
        assert_eq!(site.get(path), (200, bigger.clone()), "{path}");
    }
    // Large to small and back.
    rename_over(&site.root().join("big.bin"), "small now");
    assert_eq!(site.get("/big.bin"), (200, "small now".to_owned()));
    rename_over(&site.root().join("big.bin"), &big);
    assert_eq!(site.get("/big.bin"), (200, big.clone()));
}

#[test]
fn a_fresh_file_rewritten_at_once_is_served_new() {
    // Not settled: never cached, so a rewrite within the file system's clock tick is still seen.
    let site = Site::new(&[], false);
    let path = site.root().join("fresh.txt");
    for version in ["aaaa", "bbbb", "cccc"] {
        fs::write(&path, version).unwrap();
        assert_eq!(site.get("/fresh.txt"), (200, version.to_owned()));
    }
}

#[test]
fn a_deleted_file_is_404() {
    let site = Site::new(&[("a.txt", "version 1"), ("d/b.txt", "version 1")], false);
    site.cache("/a.txt", "version 1");
    site.cache("/d/b.txt", "version 1");
    fs::remove_file(site.root().join("a.txt")).unwrap();
    fs::remove_file(site.root().join("d/b.txt")).unwrap();
    assert_eq!(site.get("/a.txt").0, 404);
    assert_eq!(site.get("/d/b.txt").0, 404);
}

#[test]
fn a_directory_swapped_in_is_redirected_to() {
    let site = Site::new(&[("a.txt", "version 1")], false);
    site.cache("/a.txt", "version 1");
    fs::remove_file(site.root().join("a.txt")).unwrap();
    fs::create_dir(site.root().join("a.txt")).unwrap();
    assert_eq!(site.get("/a.txt").0, 301);
}

#[test]
fn a_file_swapped_for_a_link_out_of_the_root_is_404() {
    let site = Site::new(&[("a.txt", "cached!"), ("d/b.txt", "cached!")], false);
    site.cache("/a.txt", "cached!");
    site.cache("/d/b.txt", "cached!");
    let secret = site.outside().join("secret.txt");
    for name in ["a.txt", "d/b.txt"] {
        let path = site.root().join(name);
        fs::remove_file(&path).unwrap();
        symlink(&secret, &path).unwrap();
    }
    assert_eq!(site.get("/a.txt").0, 404);
    assert_eq!(site.get("/d/b.txt").0, 404);
}

#[test]
fn a_directory_moved_out_and_linked_back_is_404() {
    // The cached inode itself is unchanged, but the path now reaches it through a link out of the
    // root: the cache must not vouch for it.
    let site = Site::new(&[("sub/a.txt", "cached!")], false);
    site.cache("/sub/a.txt", "cached!");
    let moved = site.outside().join("moved");
    fs::rename(site.root().join("sub"), &moved).unwrap();
    symlink(&moved, site.root().join("sub")).unwrap();
    assert_eq!(site.get("/sub/a.txt").0, 404);
    // A directory swapped for a link to another outside directory with a file of that name.
    let site = Site::new(&[("sub/a.txt", "cached!")], false);
    site.cache("/sub/a.txt", "cached!");
    fs::remove_file(site.root().join("sub/a.txt")).unwrap();
    fs::remove_dir(site.root().join("sub")).unwrap();
    symlink(site.outside().join("sub"), site.root().join("sub")).unwrap();
    assert_eq!(site.get("/sub/a.txt").0, 404);
}

#[test]
fn links_inside_the_root_and_followed_links_keep_working() {
    let site = Site::new(&[("a.txt", "target"), ("d/b.txt", "target")], false);
    symlink("a.txt", site.root().join("alias.txt")).unwrap();
    symlink("../a.txt", site.root().join("d/alias.txt")).unwrap();
    site.cache("/alias.txt", "target");
    site.cache("/d/alias.txt", "target");
    rename_over(&site.root().join("a.txt"), "change");
    assert_eq!(site.get("/alias.txt"), (200, "change".to_owned()));
    assert_eq!(site.get("/d/alias.txt"), (200, "change".to_owned()));

    let site = Site::new(&[("a.txt", "inside!")], true);
    site.cache("/a.txt", "inside!");
    fs::remove_file(site.root().join("a.txt")).unwrap();
    symlink(site.outside().join("secret.txt"), site.root().join("a.txt")).unwrap();
    assert_eq!(
        site.get("/a.txt"),
        (200, "secret!".to_owned()),
        "--follow-symlinks follows it"
    );
}

#[test]
fn hidden_files_stay_hidden_once_cached_elsewhere() {
    let site = Site::new(&[("a.txt", "visible")], false);
    site.cache("/a.txt", "visible");
    fs::rename(site.root().join("a.txt"), site.root().join(".a.txt")).unwrap();
    assert_eq!(site.get("/.a.txt").0, 404);
    assert_eq!(site.get("/a.txt").0, 404);
}

#[test]
fn many_distinct_files_are_all_served_right() {
    // More files and bytes than one worker's cache holds: each is still served whole and current.
    let names: Vec<String> = (0..1_200).map(|index| format!("f{index:04}.txt")).collect();
    let contents: Vec<String> = names
        .iter()
        .map(|name| format!("{name} ").repeat(if name.ends_with("0.txt") { 700 } else { 1 }))
        .collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .zip(&contents)
        .map(|(name, content)| (name.as_str(), content.as_str()))
        .collect();
    let site = Site::new(&files, false);
    for round in 0..2 {
        for (name, content) in &files {
            assert_eq!(
                site.get(&format!("/{name}")),
                (200, (*content).to_owned()),
                "round {round}"
            );
        }
    }
}
