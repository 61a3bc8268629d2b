//! End-to-end: browse the listing, stream each kind of media and play it with real clients.

mod support;

use support::hls::Playlist;
use support::listing::{self, Page};
use support::media::{self, Clip};
use support::{Kind, Server, check_stream, media_root};

/// Shorter than the default so that a 6 s clip makes enough segments to watch the playlist grow.
const SEGMENT_SECONDS: f64 = 1.0;

/// Starts a server on the media folder with `extra` arguments, finds `clip` by crawling from `/`
/// and plays it; returns every distinct version of the playlist seen while polling it.
fn play_from_folder(clip: &Clip, kind: Kind, extra: &[&str]) -> Vec<Playlist> {
    let seconds = SEGMENT_SECONDS.to_string();
    let mut args = vec!["--segment-duration", &seconds];
    if kind == Kind::Event {
        args.extend(["--playlist", "event"]);
    }
    args.extend_from_slice(extra);
    let server = Server::start(media_root(), &args);
    let crawl = listing::crawl(&server);
    check_stream(
        &server,
        crawl.playlist(clip.rel),
        clip,
        SEGMENT_SECONDS,
        kind,
    )
}

#[test]
fn event_playlist_mp4_grows_until_the_end() {
    // With the default preset the 6 s clip's last three segments can all come between two polls
    // (50 ms apart), so the growth would go unseen on a fast machine; x264's slowest preset takes
    // a few hundred milliseconds a segment, and every version shows.
    let versions = play_from_folder(&media::MP4, Kind::Event, &["--preset", "veryslow"]);
    let growing: Vec<usize> = versions
        .iter()
        .filter(|v| !v.ended)
        .map(|v| v.segments.len())
        .collect();
    assert!(
        growing.len() >= 2,
        "saw {} version(s) of the EVENT playlist before #EXT-X-ENDLIST (segment counts \
         {growing:?}), wanted two or more: it did not grow while polled",
        growing.len()
    );
}

#[test]
fn event_playlist_audio_only() {
    play_from_folder(&media::AUDIO_ONLY, Kind::Event, &[]);
}

#[test]
fn mp4_h264_aac() {
    play_from_folder(&media::MP4, Kind::Vod, &[]);
}

#[test]
fn webm_vp9_opus() {
    play_from_folder(&media::WEBM, Kind::Vod, &[]);
}

#[test]
fn audio_only_mp3() {
    play_from_folder(&media::AUDIO_ONLY, Kind::Vod, &[]);
}

#[test]
fn video_only_mkv() {
    play_from_folder(&media::VIDEO_ONLY, Kind::Vod, &[]);
}

#[test]
fn awkward_name_in_subfolder() {
    play_from_folder(&media::AWKWARD, Kind::Vod, &[]);
}

#[test]
fn single_file_mode_lists_and_plays_that_file() {
    let clip = &media::MP4;
    // The default segment duration (2 s) on purpose: no other stream is played with it.
    let server = Server::start(media_root().join(clip.rel), &[]);
    let crawl = listing::crawl(&server);
    let files: Vec<&String> = crawl.playlists.keys().collect();
    assert_eq!(
        files,
        [clip.rel],
        "in single-file mode `/` lists exactly that file"
    );
    assert_eq!(
        crawl.pages.len(),
        1,
        "single-file mode has no folders to browse"
    );
    check_stream(&server, crawl.playlist(clip.rel), clip, 2.0, Kind::Vod);
}

/// Position of the first link that satisfies `pred`, for order checks.
fn position(page: &Page, what: &str, pred: impl Fn(&str) -> bool) -> usize {
    page.links
        .iter()
        .position(|l| pred(l))
        .unwrap_or_else(|| panic!("{}: no link to {what} in {:?}", page.path, page.links))
}

fn is_file(rel: &str) -> impl Fn(&str) -> bool + '_ {
    move |link| listing::playlist_rel(link).as_deref() == Some(rel)
}

#[test]
fn listing_escapes_sorts_and_hides() {
    let server = Server::start(media_root(), &[]);
    let crawl = listing::crawl(&server);
    let root = &crawl.pages["/"];

    // Hidden files are neither linked nor mentioned.
    for page in crawl.pages.values() {
        for link in &page.links {
            let rel = listing::playlist_rel(link).or_else(|| listing::browse_rel(link));
            if let Some(rel) = rel {
                assert!(
                    !rel.split('/').any(|part| part.starts_with('.')),
                    "{}: links to hidden {rel:?}",
                    page.path
                );
            }
        }
        assert!(
            !page.html.contains(media::HIDDEN),
            "{}: mentions {}",
            page.path,
            media::HIDDEN
        );
    }

    // Folders first, then files in natural order.
    let folders: Vec<usize> = (0..root.links.len())
        .filter(|&i| listing::browse_rel(&root.links[i]).is_some_and(|r| !r.is_empty()))
        .collect();
    let files: Vec<usize> = (0..root.links.len())
        .filter(|&i| listing::playlist_rel(&root.links[i]).is_some())
        .collect();
    assert_eq!(folders.len(), 2, "root lists two folders: {:?}", root.links);
    assert!(
        folders.iter().max() < files.iter().min(),
        "folders must come before files: {:?}",
        root.links
    );
    let awkward_dir = position(root, media::AWKWARD_DIR, |l| {
        listing::browse_rel(l).as_deref() == Some(media::AWKWARD_DIR)
    });
    let last_dir = position(root, media::LAST_DIR, |l| {
        listing::browse_rel(l).as_deref() == Some(media::LAST_DIR)
    });
    assert!(awkward_dir < last_dir, "folders sorted: {:?}", root.links);
    let ep2 = position(root, media::EP2, is_file(media::EP2));
    let ep10 = position(root, media::EP10, is_file(media::EP10));
    assert!(
        ep2 < ep10,
        "natural sort puts ep2 before ep10: {:?}",
        root.links
    );
    for clip in [
        media::MP4,
        media::WEBM,
        media::AUDIO_ONLY,
        media::VIDEO_ONLY,
    ] {
        position(root, clip.rel, is_file(clip.rel));
    }

    // `&` in a folder name is escaped in text and the href round-trips to the real name.
    assert!(
        root.html.contains("Sub Dir &amp; "),
        "folder name not HTML-escaped:\n{}",
        root.html
    );
    assert!(
        !root.html.contains("Sub Dir & "),
        "raw `&` in the HTML:\n{}",
        root.html
    );

    // The file with `<a>` and quotes in its name: escaped text, exact href round trip, size, way up.
    let sub = crawl
        .pages
        .values()
        .find(|p| listing::browse_rel(&p.path).as_deref() == Some(media::AWKWARD_DIR))
        .expect("the crawl visited the awkward folder");
    let file_link = position(sub, media::AWKWARD.rel, is_file(media::AWKWARD.rel));
    assert!(
        sub.html.contains("&lt;a&gt;"),
        "`<a>` in the file name must appear as `&lt;a&gt;`:\n{}",
        sub.html
    );
    assert!(
        !sub.html.contains("<a> "),
        "raw `<a>` from the file name in the HTML:\n{}",
        sub.html
    );
    let shown_size = text_around_link(sub, file_link);
    assert!(
        shown_size.chars().any(|c| c.is_ascii_digit()),
        "no size shown next to the file, text around it: {shown_size:?}\n{}",
        sub.html
    );
    assert!(
        sub.links.iter().any(|l| l == "/" || l == "/browse/"),
        "sub-listing has no link back up to `/`: {:?}",
        sub.links
    );
}

/// Visible text around the page's link number `index`: from the previous link's `</a>` up to it, and
/// from its `</a>` to the next link. That is where a listing row shows details such as the size,
/// whichever side of the name it puts them.
fn text_around_link(page: &Page, index: usize) -> String {
    let html = page.html.as_str();
    let href_at = html
        .match_indices("href=\"")
        .nth(index)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{}: no href number {index}", page.path));
    let anchor_start = html[..href_at].rfind("<a").unwrap_or(0);
    let previous_end = html[..anchor_start]
        .rfind("</a>")
        .map_or(anchor_start, |i| i + "</a>".len());
    let anchor_end = html[href_at..]
        .find("</a>")
        .map_or(html.len(), |i| href_at + i + "</a>".len());
    let next_start = html[anchor_end..]
        .find("<a")
        .map_or(html.len(), |i| anchor_end + i);
    format!(
        "{} | {}",
        listing::visible_text(&html[previous_end..anchor_start]),
        listing::visible_text(&html[anchor_end..next_start])
    )
}
