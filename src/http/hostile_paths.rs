//! Table test of path confinement: hostile raw request paths, through the router's single decode
//! and the library's one confining function, never reach a file outside the media root.

use std::path::PathBuf;

use super::urls::{Route, route};
use crate::library::{Library, Source, confine};

/// A media root inside a scratch folder that also holds things the server must never reach.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    library: Library,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().canonicalize().unwrap();
    let root = top.join("media");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(top.join("outside")).unwrap();
    for file in [
        "media/clip.mp4",
        "media/sub/inner.mp4",
        "media/.hidden.mp4",
        "secret.mp4",
        "outside/x.mp4",
    ] {
        std::fs::write(top.join(file), b"bytes").unwrap();
    }
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, root.join(name));
    link("sub", "link_in").unwrap();
    link("clip.mp4", "link_in_file.mp4").unwrap();
    link("../outside", "link_out").unwrap();
    link("../secret.mp4", "link_out_file.mp4").unwrap();
    link("/etc", "link_abs").unwrap();
    link("link_loop", "link_loop").unwrap();
    link("sub/../../secret.mp4", "link_dotdot.mp4").unwrap();
    let library = Library::open(Some(&root)).unwrap();
    Tree {
        _dir: dir,
        root,
        library,
    }
}

/// What a raw request path reaches on disk, exactly as a request would: `route` decodes once,
/// then the library resolves (playlists and segments) or lists (folders).
fn reach(tree: &Tree, raw: &str) -> Option<PathBuf> {
    let Tree { root, library, .. } = tree;
    match route(raw)? {
        Route::Hls(rel, _) => match library.source(&rel).ok()? {
            Source::File(path) => Some(path),
            Source::Demo => None,
        },
        Route::Folder(rel) => {
            library.list(&rel).ok()?;
            confine(root, &rel)
        }
        _ => None,
    }
}

/// Hostile request paths, as raw bytes on the request line would carry them.
const HOSTILE: &[&str] = &[
    "/hls/../secret.mp4/index.m3u8",
    "/hls/..%2fsecret.mp4/index.m3u8",
    "/hls/..%2Fsecret.mp4/index.m3u8",
    "/hls/%2e%2e/secret.mp4/index.m3u8",
    "/hls/%2E%2E%2Fsecret.mp4/index.m3u8",
    "/hls/%2e%2e%2fsecret.mp4/0.ts",
    "/hls/.%2e/secret.mp4/index.m3u8",
    "/hls/%2e./secret.mp4/index.m3u8",
    "/hls/%252e%252e/secret.mp4/index.m3u8",
    "/hls/%252e%252e%252fsecret.mp4/index.m3u8",
    "/hls/%%32%65%%32%65/secret.mp4/index.m3u8",
    "/hls/%u002e%u002e/secret.mp4/index.m3u8",
    "/hls/%c0%ae%c0%ae/secret.mp4/index.m3u8",
    "/hls/%c0%ae%c0%ae%c0%afsecret.mp4/index.m3u8",
    "/hls/%e0%80%ae%e0%80%ae/secret.mp4/index.m3u8",
    "/hls/%f0%80%80%ae%f0%80%80%ae/secret.mp4/index.m3u8",
    "/hls/%c0%2e%c0%2e/secret.mp4/index.m3u8",
    "/hls/%ef%bc%8e%ef%bc%8e/secret.mp4/index.m3u8",
    "/hls/..%5csecret.mp4/index.m3u8",
    "/hls/..\\secret.mp4/index.m3u8",
    "/hls/sub%5c..%5c..%5csecret.mp4/index.m3u8",
    "/hls/%2e%2e%5c%2e%2e%5csecret.mp4/index.m3u8",
    "/hls/clip.mp4%00.txt/index.m3u8",
    "/hls/clip.mp4%00/index.m3u8",
    "/hls/clip.mp4/index.m3u8%00",
    "/hls/clip.mp4/0.ts%00",
    "/browse/%00/",
    "/browse/sub/..%00/",
    "/hls/%2fetc%2fpasswd/index.m3u8",
    "/hls//etc/passwd/index.m3u8",
    "/hls/%2F%2Fetc/passwd/index.m3u8",
    "//etc/passwd",
    "/etc/passwd",
    "/browse/..%2f..%2f/",
    "/browse/%2e%2e/",
    "/browse/../",
    "/browse/sub/../../",
    "/browse/%2e%2e%2f%2e%2e%2fetc/",
    "/hls/sub/../../secret.mp4/index.m3u8",
    "/hls/sub/%2e%2e/%2e%2e/secret.mp4/index.m3u8",
    "/hls/sub%2f..%2f..%2fsecret.mp4/index.m3u8",
    "/hls/sub/.%2e/.%2e/secret.mp4/index.m3u8",
    "/hls/..;/secret.mp4/index.m3u8",
    "/hls/.../secret.mp4/index.m3u8",
    "/hls/clip.mp4/../index.m3u8",
    "/hls/clip.mp4/%2e%2e%2f%2e%2e%2fsecret.mp4",
    "/hls/secret.mp4/index.m3u8",
    "/hls/link_out/x.mp4/index.m3u8",
    "/hls/link_out_file.mp4/index.m3u8",
    "/hls/link_dotdot.mp4/index.m3u8",
    "/browse/link_out/",
    "/hls/link_abs/passwd/index.m3u8",
    "/hls/link_abs/hostname/0.ts",
    "/browse/link_abs/",
    "/hls/link_loop/index.m3u8",
    "/hls/.hidden.mp4/index.m3u8",
    "/hls/%2ehidden.mp4/index.m3u8",
    "/hls/sub/index.m3u8",
    "/hls//index.m3u8",
    "/hls/index.m3u8",
];

#[test]
fn hostile_request_paths_never_leave_the_root() {
    let tree = tree();
    assert!(HOSTILE.len() >= 40);
    for raw in HOSTILE {
        assert_eq!(reach(&tree, raw), None, "{raw} reached a file");
    }
    let long = format!("/hls/{}index.m3u8", "a/".repeat(5000));
    assert_eq!(reach(&tree, &long), None);
    let deep = format!("/browse/{}", "sub/..%2f".repeat(500));
    assert_eq!(reach(&tree, &deep), None);
}

#[test]
fn symlinks_inside_the_root_work() {
    let tree = tree();
    let root = &tree.root;
    for (raw, expected) in [
        ("/hls/clip.mp4/index.m3u8", root.join("clip.mp4")),
        ("/hls/clip.mp4/3.ts", root.join("clip.mp4")),
        (
            "/hls/sub%2Finner.mp4/index.m3u8",
            root.join("sub/inner.mp4"),
        ),
        (
            "/hls/link_in/inner.mp4/index.m3u8",
            root.join("sub/inner.mp4"),
        ),
        ("/hls/link_in_file.mp4/index.m3u8", root.join("clip.mp4")),
        ("/browse/link_in/", root.join("sub")),
        ("/browse/sub/", root.join("sub")),
        ("/", root.clone()),
    ] {
        assert_eq!(
            reach(&tree, raw).as_deref(),
            Some(expected.as_path()),
            "{raw}"
        );
    }
}

#[test]
fn listings_hide_links_that_leave_the_root() {
    let tree = tree();
    let names: Vec<String> = tree
        .library
        .list(&Default::default())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&"link_in".to_owned()), "{names:?}");
    assert!(names.contains(&"link_in_file.mp4".to_owned()), "{names:?}");
    for hidden in ["link_out", "link_out_file.mp4", "link_abs", "link_loop"] {
        assert!(
            !names.iter().any(|n| n == hidden),
            "{hidden} listed: {names:?}"
        );
    }
}
