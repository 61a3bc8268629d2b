//! hlss: an on-demand HLS server; data flows library → transcode → segmenter → stream → http.
#![forbid(unsafe_code)]

pub mod access;
pub mod config;
pub mod http;
pub mod library;
pub mod segmenter;
pub mod stream;
pub mod subtitles;
pub mod transcode;
