//! Every audio track and every subtitle: the master playlist's renditions, opened by ffmpeg, in sync and with the right cues at the right time.

mod support;

use std::process::Command;

use support::hls::{self, Master};
use support::tools::{self, CLIENT_TIMEOUT, run_with_timeout};
use support::tracks_media::{self as media, Line};
use support::{Server, http};

/// How far an alternate audio track may be from the picture (the bound).
const SYNC_TOLERANCE: f64 = 0.040;
/// The PTS (seconds) mpegtsmux gives the plan's origin.
const PTS_BASE: f64 = 3600.0;

fn fetch_master(server: &Server, file: &str) -> (String, Master) {
    let url = server.url(&format!("/hls/{file}/index.m3u8"));
    let reply = http::get_ok(&url, hls::PLAYLIST_MIME).unwrap_or_else(|e| panic!("{url}: {e}"));
    let text = reply.utf8().expect("UTF-8").to_owned();
    let master = hls::parse_master(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (url, master)
}

fn attr<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    Master::attribute(attributes, name)
}

/// Runs ffprobe on `input` with `args`, returning its stdout.
fn ffprobe(input: &str, args: &[&str]) -> String {
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .arg(input),
        CLIENT_TIMEOUT,
    );
    assert!(run.success(), "ffprobe {input}: {}", run.describe());
    run.stdout
}

#[test]
fn the_master_playlist_offers_every_track() {
    let server = Server::start(media::tracks_root(), &[]);
    let (url, master) = fetch_master(&server, media::FILM);

    let audio = master.renditions("AUDIO");
    assert_eq!(audio.len(), 2, "{master:?}");
    assert_eq!(attr(audio[0], "LANGUAGE"), Some("en"));
    assert_eq!(attr(audio[0], "NAME"), Some("English"));
    assert_eq!(attr(audio[0], "DEFAULT"), Some("YES"));
    // Every track is fetched on its own, the default too: the variant is the picture alone, so
    // that every client can switch away from the default.
    assert!(attr(audio[0], "URI").is_some_and(|u| u.starts_with("audio0.m3u8")));
    assert_eq!(attr(audio[0], "CHANNELS"), Some("2"));
    assert_eq!(attr(audio[1], "LANGUAGE"), Some("fr"));
    assert_eq!(attr(audio[1], "NAME"), Some(media::FRENCH_TITLE));
    assert_eq!(attr(audio[1], "DEFAULT"), None);
    assert_eq!(attr(audio[1], "AUTOSELECT"), Some("YES"));
    // AAC passes through (direct-stream rules): its six channels stay.
    assert_eq!(attr(audio[1], "CHANNELS"), Some("6"));

    let subtitles = master.renditions("SUBTITLES");
    let described: Vec<(Option<&str>, Option<&str>, Option<&str>)> = subtitles
        .iter()
        .map(|m| (attr(m, "LANGUAGE"), attr(m, "NAME"), attr(m, "FORCED")))
        .collect();
    assert_eq!(
        described,
        [
            (Some("en"), Some("English"), None),
            (Some("fr"), Some("French"), None),
            (Some("de"), Some("German"), None),
            (Some("es"), Some("Spanish (forced)"), Some("YES")),
        ]
    );

    // The variant: what ffprobe finds in its segments is what CODECS, RESOLUTION and
    // FRAME-RATE say.
    let info = &master.info;
    let variant = hls::resolve(&url, &master.variant);
    let video = ffprobe(
        &variant,
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "stream=profile,level,width,height,r_frame_rate",
            "-of",
            "default=nw=1",
        ],
    );
    let field = |name: &str| {
        video
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {video}"))
            .to_owned()
    };
    let level: u8 = field("level").parse().expect("a level");
    let profile = match field("profile").as_str() {
        "High" => "6400",
        "Constrained Baseline" => "42c0",
        other => panic!("profile {other}"),
    };
    assert_eq!(
        attr(info, "CODECS"),
        Some(format!("avc1.{profile}{level:02x},mp4a.40.2").as_str()),
        "{video}"
    );
    assert_eq!(
        attr(info, "RESOLUTION"),
        Some(format!("{}x{}", field("width"), field("height")).as_str())
    );
    let rate: f64 = attr(info, "FRAME-RATE")
        .expect("FRAME-RATE")
        .parse()
        .unwrap();
    assert!((rate - 25.0).abs() < 0.001, "{info:?}");
    assert_eq!(attr(info, "AUDIO"), Some("audio"));
    assert_eq!(attr(info, "SUBTITLES"), Some("subs"));
    let bandwidth: f64 = attr(info, "BANDWIDTH").unwrap().parse().unwrap();
    let average: f64 = attr(info, "AVERAGE-BANDWIDTH").unwrap().parse().unwrap();
    assert!(bandwidth >= average, "{info:?}");
}

#[test]
fn ffmpeg_opens_every_rendition() {
    let server = Server::start(media::tracks_root(), &[]);
    for file in [media::FILM, media::TRANSCODED] {
        let (url, master) = fetch_master(&server, file);
        // The master as a whole: ffmpeg lists the variant's streams and every rendition's.
        let streams = ffprobe(
            &url,
            &[
                "-show_entries",
                "stream=codec_type,codec_name,channels:stream_tags=language",
                "-of",
                "compact",
            ],
        );
        // (ffmpeg 5.1 leaves subtitle renditions out of a master; each is opened below.)
        for wanted in ["codec_name=h264", "language=fr"] {
            assert!(
                streams.contains(wanted),
                "{file}: no {wanted} in\n{streams}"
            );
        }
        for rendition in master.media.iter() {
            let Some(uri) = attr(rendition, "URI") else {
                continue;
            };
            let media_url = hls::resolve(&url, uri);
            if attr(rendition, "TYPE") == Some("SUBTITLES") {
                // ffmpeg cannot decode text to its null output: it reads the cues out instead.
                let cues = ffmpeg_cues(&media_url);
                assert!(!cues.is_empty(), "{file} {uri}: no cue");
                continue;
            }
            let played =
                tools::ffmpeg_play(&media_url).unwrap_or_else(|e| panic!("{file} {uri}: {e}"));
            assert!(
                (played.duration - media::SECONDS).abs() < 0.5,
                "{file} {uri}: ffmpeg decoded {played:?}"
            );
        }
        // The alternate French track: AAC, six channels when passed through, else stereo.
        let french = hls::resolve(&url, attr(master.renditions("AUDIO")[1], "URI").unwrap());
        let channels = ffprobe(
            &french,
            &[
                "-show_entries",
                "stream=codec_name,channels",
                "-of",
                "compact",
            ],
        );
        assert!(
            channels.contains("codec_name=aac|channels=6"),
            "{file}: {channels}"
        );
    }
}

/// The time (PTS seconds) `url`'s first audio turns loud, by ffmpeg's silence detector.
fn first_sound(url: &str) -> f64 {
    let run = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-copyts", "-i", url])
            .args(["-map", "0:a:0", "-af", "silencedetect=n=-30dB:d=0.05"])
            .args(["-f", "null", "-"]),
        CLIENT_TIMEOUT,
    );
    assert!(run.success(), "ffmpeg {url}: {}", run.describe());
    run.stderr
        .lines()
        .find_map(|l| l.split("silence_end: ").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no sound found in {url}: {}", run.describe()))
}

/// The time (PTS seconds) of `url`'s first white picture.
fn first_flash(url: &str) -> f64 {
    let run = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-copyts", "-i", url])
            .args([
                "-map",
                "0:v:0",
                "-vf",
                "signalstats,metadata=print:key=lavfi.signalstats.YAVG",
            ])
            .args(["-f", "null", "-"]),
        CLIENT_TIMEOUT,
    );
    assert!(run.success(), "ffmpeg {url}: {}", run.describe());
    let mut time = None;
    for line in run.stderr.lines() {
        if let Some(t) = line.split("pts_time:").nth(1) {
            time = t
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok());
        } else if let Some(y) = line.split("YAVG=").nth(1)
            && y.trim().parse::<f64>().is_ok_and(|y| y > 200.0)
        {
            return time.expect("a frame time before its stats");
        }
    }
    panic!("no white picture in {url}: {}", run.describe());
}

#[test]
fn a_non_default_audio_track_keeps_sync_with_the_picture() {
    let server = Server::start(media::tracks_root(), &[]);
    for file in [media::FILM, media::TRANSCODED] {
        let (url, master) = fetch_master(&server, file);
        let video = hls::resolve(&url, &master.variant);
        let audio = master.renditions("AUDIO");
        let track = |n: usize| hls::resolve(&url, attr(audio[n], "URI").unwrap());
        let flash = first_flash(&video);
        let own_sound = first_sound(&track(0));
        let french_sound = first_sound(&track(1));
        eprintln!(
            "{file}: flash {flash:.3}, default track {own_sound:.3}, French {french_sound:.3}"
        );
        assert!(
            (flash - PTS_BASE - media::FLASH_AT).abs() < 0.1,
            "{file}: the flash at {flash}"
        );
        for (what, sound) in [("default", own_sound), ("French", french_sound)] {
            assert!(
                (sound - flash).abs() <= SYNC_TOLERANCE,
                "{file}: {what} track sounds at {sound:.3}, picture flashes at {flash:.3}"
            );
        }
    }
}

/// The cues ffmpeg reads from a subtitle rendition, as (start, end, text) in seconds of the
/// WebVTT timeline.
fn ffmpeg_cues(url: &str) -> Vec<(f64, f64, String)> {
    let run = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "error", "-i", url])
            .args(["-f", "webvtt", "-"]),
        CLIENT_TIMEOUT,
    );
    assert!(run.success(), "ffmpeg {url}: {}", run.describe());
    let clock = |s: &str| -> f64 {
        let parts: Vec<f64> = s.split(':').filter_map(|p| p.parse().ok()).collect();
        parts.iter().fold(0.0, |acc, p| acc * 60.0 + p)
    };
    let mut cues = Vec::new();
    let mut lines = run.stdout.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((from, to)) = line.split_once(" --> ") {
            let mut text = Vec::new();
            while let Some(next) = lines.next_if(|l| !l.trim().is_empty()) {
                text.push(next);
            }
            let to = to.split_whitespace().next().unwrap_or(to);
            cues.push((clock(from), clock(to), text.join("\n")));
        }
    }
    cues
}

fn check_cues(what: &str, got: &[(f64, f64, String)], wanted: &[Line], offset: f64) {
    let wanted_text = |t: &str| t.replace('&', "&amp;");
    for (from, to, text) in wanted {
        let found = got
            .iter()
            .find(|(_, _, t)| t == &wanted_text(text) || t.replace("&amp;", "&") == *text);
        let Some((start, end, _)) = found else {
            panic!("{what}: no cue {text:?} in {got:?}");
        };
        assert!(
            (start - from - offset).abs() < 0.05 && (end - to - offset).abs() < 0.05,
            "{what}: {text:?} at {start}..{end}, wanted {from}..{to} (+{offset})"
        );
    }
}

#[test]
fn every_subtitle_rendition_has_its_cues_at_their_time() {
    let server = Server::start(media::tracks_root(), &[]);
    let (url, master) = fetch_master(&server, media::FILM);
    let subtitles = master.renditions("SUBTITLES");
    let expected: [&[Line]; 4] = [
        &media::ENGLISH_LINES,
        &media::FRENCH_LINES,
        &media::GERMAN_LINES,
        &media::SPANISH_LINES,
    ];
    for (rendition, lines) in subtitles.iter().zip(expected) {
        let uri = attr(rendition, "URI").expect("a URI");
        let playlist_url = hls::resolve(&url, uri);
        let cues = ffmpeg_cues(&playlist_url);
        // ffmpeg drops the repeat of a cue that crosses a segment boundary.
        check_cues(uri, &cues, lines, 0.0);

        // Straight from the server: every segment a WebVTT document mapped to the video's PTS,
        // one per segment of the video.
        let playlist = http::get_ok(&playlist_url, hls::PLAYLIST_MIME).expect("subtitle playlist");
        let uris: Vec<String> = playlist
            .text()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_owned)
            .collect();
        let video = hls::fetch(&url).expect("the video's playlist");
        assert_eq!(uris.len(), video.segments.len(), "{uri}");
        let mut seen = Vec::new();
        for segment in &uris {
            let text = http::get_ok(&hls::resolve(&playlist_url, segment), "text/vtt")
                .expect("a WebVTT segment")
                .utf8()
                .expect("UTF-8")
                .to_owned();
            assert!(
                text.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:324000000,LOCAL:00:00:00.000\n"),
                "{uri} {segment}: {text}"
            );
            seen.push(text);
        }
        if lines == &media::ENGLISH_LINES[..] {
            let across = seen
                .iter()
                .filter(|t| t.contains("Across a boundary"))
                .count();
            assert_eq!(across, 2, "a cue crossing a boundary is in both segments");
            assert!(seen.concat().contains("Hello <i>there</i> &amp; you"));
        }
    }
}

#[test]
fn mov_text_and_transcoded_films_have_subtitles_too() {
    let server = Server::start(media::tracks_root(), &[]);
    let (url, master) = fetch_master(&server, media::MOV_TEXT);
    assert!(
        master.renditions("AUDIO").is_empty(),
        "one audio track: no group"
    );
    let subtitles = master.renditions("SUBTITLES");
    assert_eq!(subtitles.len(), 1, "{master:?}");
    assert_eq!(attr(subtitles[0], "LANGUAGE"), Some("en"));
    // The file's title is no track's name.
    assert_eq!(attr(subtitles[0], "NAME"), Some("English"));
    let cues = ffmpeg_cues(&hls::resolve(&url, attr(subtitles[0], "URI").unwrap()));
    check_cues("mov_text", &cues, &media::MOV_TEXT_LINES, 0.0);

    let (url, master) = fetch_master(&server, media::TRANSCODED);
    let german = master.renditions("SUBTITLES")[2];
    let cues = ffmpeg_cues(&hls::resolve(&url, attr(german, "URI").unwrap()));
    check_cues("Latin-1 sidecar", &cues, &media::GERMAN_LINES, 0.0);
}

#[test]
fn a_track_nothing_can_read_does_not_stop_the_film() {
    // GStreamer 1.22 has no reader for WebVTT in Matroska: the file still plays, without it.
    let server = Server::start(media::tracks_root(), &[]);
    let (url, master) = fetch_master(&server, media::WEBVTT_MKV);
    assert!(master.renditions("SUBTITLES").is_empty(), "{master:?}");
    let played = tools::ffmpeg_play(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!((played.duration - media::SECONDS).abs() < 0.5, "{played:?}");
}

/// What GStreamer's HLS client played after a stream selection.
#[derive(Debug, Default)]
struct GstTracks {
    /// The stream ids offered, with their language tag.
    offered: Vec<(String, gst::StreamType, Option<String>)>,
    audio_channels: Option<i32>,
    /// The stream ids playbin3 said it selected, last time.
    selected: Vec<String>,
    /// Subtitle texts and their running times, seconds.
    texts: Vec<(f64, String)>,
    eos: bool,
}

/// Plays `url` with playbin3 (GStreamer's HLS client, hlsdemux2), choosing from the stream
/// collection the video, the audio in `audio_language` and the subtitles in `text_language`.
fn gst_play_tracks(url: &str, audio_language: &str, text_language: &str) -> GstTracks {
    use gst::prelude::*;
    use std::sync::{Arc, Mutex};

    gst::init().expect("GStreamer");
    let playbin = gst::ElementFactory::make("playbin3")
        .property("uri", url)
        .build()
        .expect("playbin3");
    let played = Arc::new(Mutex::new(GstTracks::default()));
    let fakesink = || {
        gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .unwrap()
    };
    let audio = gst_app::AppSink::builder().sync(false).build();
    let on_audio = played.clone();
    audio.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let channels = sample
                    .caps()
                    .and_then(|c| c.structure(0)?.get::<i32>("channels").ok());
                on_audio.lock().unwrap().audio_channels = channels;
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let text = gst_app::AppSink::builder().sync(false).build();
    let on_text = played.clone();
    text.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let (Some(buffer), Some(segment)) = (sample.buffer(), sample.segment()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let time = segment
                    .downcast_ref::<gst::ClockTime>()
                    .and_then(|s| s.to_stream_time(buffer.pts()?))
                    .map_or(-1.0, |t| t.nseconds() as f64 / 1e9);
                if let Ok(map) = buffer.map_readable() {
                    let text = String::from_utf8_lossy(map.as_slice()).into_owned();
                    on_text.lock().unwrap().texts.push((time, text));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    playbin.set_property("video-sink", fakesink());
    playbin.set_property("audio-sink", &audio);
    playbin.set_property("text-sink", &text);
    let bus = playbin.bus().unwrap();
    playbin.set_state(gst::State::Playing).expect("playing");
    let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
    let mut wanted: Vec<String> = Vec::new();
    let mut reselections = 0;
    while std::time::Instant::now() < deadline {
        let Some(message) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else {
            continue;
        };
        match message.view() {
            gst::MessageView::StreamCollection(collection) => {
                let collection = collection.stream_collection();
                let mut chosen = Vec::new();
                let mut offered = Vec::new();
                for stream in collection.iter() {
                    let id = stream
                        .stream_id()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    let language = stream.tags().and_then(|t| {
                        t.get::<gst::tags::LanguageCode>()
                            .map(|l| l.get().to_owned())
                    });
                    let kind = stream.stream_type();
                    let wanted = if kind.contains(gst::StreamType::VIDEO) {
                        true
                    } else if kind.contains(gst::StreamType::AUDIO) {
                        language.as_deref() == Some(audio_language)
                    } else if kind.contains(gst::StreamType::TEXT) {
                        language.as_deref() == Some(text_language)
                    } else {
                        false
                    };
                    if wanted {
                        chosen.push(id.clone());
                    }
                    offered.push((id, kind, language));
                }
                played.lock().unwrap().offered = offered;
                let ids: Vec<&str> = chosen.iter().map(String::as_str).collect();
                playbin.send_event(gst::event::SelectStreams::new(ids));
                wanted = chosen;
            }
            gst::MessageView::StreamsSelected(selected) => {
                let mut now: Vec<String> = selected
                    .streams()
                    .filter_map(|s| s.stream_id().map(|id| id.to_string()))
                    .collect();
                // A selection made before the demuxer had its tracks is replaced by its
                // default one: ask again once it has.
                let mut asked = wanted.clone();
                asked.sort();
                now.sort();
                if now != asked && reselections < 3 {
                    reselections += 1;
                    let ids: Vec<&str> = wanted.iter().map(String::as_str).collect();
                    playbin.send_event(gst::event::SelectStreams::new(ids));
                }
                played.lock().unwrap().selected = now;
            }
            gst::MessageView::Eos(_) => {
                played.lock().unwrap().eos = true;
                break;
            }
            gst::MessageView::Error(err) => {
                let _ = playbin.set_state(gst::State::Null);
                panic!("GStreamer: {} ({:?})", err.error(), err.debug());
            }
            _ => {}
        }
    }
    let _ = playbin.set_state(gst::State::Null);
    std::mem::take(&mut *played.lock().unwrap())
}

#[test]
fn gstreamers_client_switches_audio_and_shows_subtitles() {
    let server = Server::start(media::tracks_root(), &[]);
    let (url, _) = fetch_master(&server, media::FILM);
    let french = gst_play_tracks(&url, "fr", "en");
    eprintln!("GStreamer: {french:?}");
    let log = server.stderr_text();
    eprintln!("audio1 requests: {}", log.matches("audio1").count());
    assert!(french.eos, "{french:?}");
    // The French track is AAC 5.1 passed through; the English one is stereo.
    assert_eq!(french.audio_channels, Some(6), "{french:?}");
    let (_, _, text) = media::ENGLISH_LINES[2];
    let found = french.texts.iter().find(|(_, t)| t.contains(text));
    let (at, _) = found.unwrap_or_else(|| panic!("no {text:?} in {french:?}"));
    assert!(at.is_finite(), "{french:?}");
}

#[test]
fn the_listing_shows_each_films_languages() {
    let server = Server::start(media::tracks_root(), &[]);
    let page = http::get(&server.url("/")).text();
    let row = |file: &str| {
        page.lines()
            .find(|l| l.contains(&format!(">{file}</a>")))
            .unwrap_or_else(|| panic!("no row for {file} in {page}"))
            .to_owned()
    };
    // Matroska track headers, then the sidecar files.
    assert!(
        row(media::FILM).contains("audio en, fr \u{b7} subtitles en, fr, de, es"),
        "{}",
        row(media::FILM)
    );
    // MP4 track headers: one audio track (not worth showing) and mov_text.
    assert!(
        row(media::MOV_TEXT).contains(">subtitles en<"),
        "{}",
        row(media::MOV_TEXT)
    );
}

/// Bits per second of every segment of `playlist_url` (as `(duration, bytes)`).
fn segment_sizes(playlist_url: &str) -> Vec<(f64, usize)> {
    let playlist = http::get_ok(playlist_url, hls::PLAYLIST_MIME).expect("playlist");
    let text = playlist.text();
    let mut out = Vec::new();
    let mut duration = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.trim_end_matches(',').parse::<f64>().ok();
        } else if !line.starts_with('#') && !line.is_empty() {
            let bytes = http::get(&hls::resolve(playlist_url, line)).body.len();
            out.push((duration.take().expect("EXTINF before URI"), bytes));
        }
    }
    out
}

#[test]
fn bandwidth_covers_every_segment_and_averages_honestly() {
    let server = Server::start(media::tracks_root(), &[]);
    for file in [
        media::FILM,
        media::TRANSCODED,
        media::MOV_TEXT,
        media::UNEVEN_MP4,
        media::UNEVEN_MKV,
        media::UNEVEN_TS,
    ] {
        let (url, master) = fetch_master(&server, file);
        let declared: f64 = attr(&master.info, "BANDWIDTH").unwrap().parse().unwrap();
        let average: f64 = attr(&master.info, "AVERAGE-BANDWIDTH")
            .unwrap()
            .parse()
            .unwrap();
        let video = segment_sizes(&hls::resolve(&url, &master.variant));
        // What a player fetches beside the picture: the default audio rendition, if any.
        let audio = master
            .renditions("AUDIO")
            .first()
            .and_then(|r| attr(r, "URI"))
            .map(|uri| segment_sizes(&hls::resolve(&url, uri)))
            .unwrap_or_default();
        let per_segment: Vec<f64> = video
            .iter()
            .enumerate()
            .map(|(k, (d, bytes))| {
                let sound = audio.get(k).map_or(0, |(_, b)| *b);
                (bytes + sound) as f64 * 8.0 / d
            })
            .collect();
        let peak = per_segment.iter().copied().fold(0.0, f64::max);
        let seconds: f64 = video.iter().map(|(d, _)| d).sum();
        let bytes: usize = video.iter().chain(&audio).map(|(_, b)| b).sum();
        let measured = bytes as f64 * 8.0 / seconds;
        eprintln!(
            "{file}: BANDWIDTH {declared:.0} vs peak {peak:.0}; AVERAGE-BANDWIDTH {average:.0} vs {measured:.0}"
        );
        assert!(
            peak <= declared,
            "{file}: a segment at {peak:.0} b/s over BANDWIDTH {declared}"
        );
        assert!(
            (0.5..=1.5).contains(&(measured / average)),
            "{file}: measured average {measured:.0} b/s, declared {average}"
        );
    }
}

#[test]
fn sound_alone_in_two_tracks_plays_its_default_track() {
    let server = Server::start(media::tracks_root(), &[]);
    let (url, master) = fetch_master(&server, media::SOUND);
    // No picture to carry: one variant with the track the file flags default (French, 5.1).
    assert!(master.renditions("AUDIO").is_empty(), "{master:?}");
    let played = tools::ffmpeg_play(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!((played.duration - media::SECONDS).abs() < 0.5, "{played:?}");
    let channels = ffprobe(
        &hls::resolve(&url, &master.variant),
        &["-show_entries", "stream=channels", "-of", "compact"],
    );
    assert!(channels.contains("channels=6"), "{channels}");
}
