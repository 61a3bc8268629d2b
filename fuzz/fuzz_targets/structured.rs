//! Fuzz target: TS built from real and synthesized packets with mutated fields, cut into random chunks, both kinds of cuts.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use hlss::segmenter::{check, synth};
use libfuzzer_sys::fuzz_target;

/// Real mpegtsmux output (H.264 + AAC, PMT on 0x20, video 0x41, audio 0x42).
const REAL: &[u8] = include_bytes!("../../tests/corpus/segmenter/av_h264_aac.ts");
const PACKET: usize = 188;
const PTS_MASK: u64 = (1 << 33) - 1;
/// The PIDs worth hitting: PAT, the real PMT, video, audio, a spare, null, another PMT.
const PIDS: [u16; 7] = [0, 0x20, 0x41, 0x42, 0x51, 0x1FFF, 0x100];
/// Streams longer than this are cut short: bigger inputs only slow the fuzzer down.
const MAX_STREAM: usize = 1 << 20;

#[derive(Arbitrary, Debug)]
struct Case {
    target_ms: u16,
    /// PTS clock at the start (masked to 33 bits): lets runs start near the wrap.
    clock: u64,
    ops: Vec<Op>,
    /// Chunk lengths (modulo 1024) for the split run; the rest goes in one piece.
    chunks: Vec<u16>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Real packets `start..start + count` of the clip, verbatim.
    Real {
        start: u16,
        count: u8,
    },
    /// One real packet with one field changed.
    Mutated {
        index: u16,
        field: Field,
    },
    Pat {
        program: u8,
        pmt: Pid,
    },
    Pmt {
        pid: Pid,
        program: u8,
        streams: Vec<(StreamType, Pid)>,
    },
    /// A PES start at the clock moved by `step` ticks, then `cont` continuation packets.
    Pes {
        pid: Pid,
        step: i32,
        rai: bool,
        dts: bool,
        cont: u8,
    },
    /// Sets the clock anywhere (discontinuities, the 2^33 wrap).
    Jump(u64),
    Null,
    Junk(Vec<u8>),
    /// Drops the last `n` bytes written so far (a truncated packet).
    Truncate(u8),
    FlipBit {
        back: u16,
        bit: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Field {
    Pid(Pid),
    Pusi,
    Rai,
    Tei,
    Sync(u8),
    Pts(i64),
    AfLen(u8),
    Byte { at: u8, value: u8 },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Pid(u16);

impl Pid {
    fn get(self) -> u16 {
        PIDS.get(usize::from(self.0 & 7))
            .copied()
            .unwrap_or(self.0 >> 3 & 0x1FFF)
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct StreamType(u8);

impl StreamType {
    fn get(self) -> u8 {
        // H.264, AAC, HEVC, MPEG-2 video, private data, MPEG audio; else any value.
        [0x1B, 0x0F, 0x24, 0x02, 0x06, 0x03]
            .get(usize::from(self.0 & 7))
            .copied()
            .unwrap_or(self.0)
    }
}

fn real_packet(index: u16) -> [u8; PACKET] {
    let n = REAL.len() / PACKET;
    let i = usize::from(index) % n * PACKET;
    let mut p = [0; PACKET];
    p.copy_from_slice(&REAL[i..i + PACKET]);
    p
}

fn mutate(p: &mut [u8; PACKET], field: &Field) {
    match *field {
        Field::Pid(pid) => {
            let pid = pid.get();
            p[1] = (p[1] & 0xE0) | (pid >> 8) as u8;
            p[2] = pid as u8;
        }
        Field::Pusi => p[1] ^= 0x40,
        Field::Tei => p[1] ^= 0x80,
        Field::Rai => {
            if p[3] & 0x20 != 0 && p[4] > 0 {
                p[5] ^= 0x40;
            }
        }
        Field::Sync(b) => p[0] = b,
        Field::Pts(delta) => {
            synth::rewrite_pts(p, |t| t.wrapping_add(delta as u64) & PTS_MASK);
        }
        Field::AfLen(len) => {
            p[3] |= 0x20;
            p[4] = len;
        }
        Field::Byte { at, value } => p[usize::from(at) % PACKET] = value,
    }
}

fn build(case: &Case) -> Vec<u8> {
    let mut ts = Vec::new();
    let mut clock = case.clock & PTS_MASK;
    let mut cc = 0u8;
    for op in &case.ops {
        if ts.len() > MAX_STREAM {
            break;
        }
        cc = cc.wrapping_add(1);
        match op {
            Op::Real { start, count } => {
                for k in 0..u16::from(*count) {
                    ts.extend_from_slice(&real_packet(start.wrapping_add(k)));
                }
            }
            Op::Mutated { index, field } => {
                let mut p = real_packet(*index);
                mutate(&mut p, field);
                ts.extend_from_slice(&p);
            }
            Op::Pat { program, pmt } => {
                ts.extend_from_slice(&synth::pat(u16::from(*program), pmt.get(), cc));
            }
            Op::Pmt {
                pid,
                program,
                streams,
            } => {
                let streams: Vec<_> = streams
                    .iter()
                    .take(8)
                    .map(|(t, p)| (t.get(), p.get()))
                    .collect();
                ts.extend_from_slice(&synth::pmt(pid.get(), u16::from(*program), &streams, cc));
            }
            Op::Pes {
                pid,
                step,
                rai,
                dts,
                cont,
            } => {
                clock = clock.wrapping_add(i64::from(*step) as u64) & PTS_MASK;
                let pid = pid.get();
                let stream_id = if pid == 0x42 { 0xC0 } else { 0xE0 };
                let dts = dts.then(|| clock.wrapping_sub(3600) & PTS_MASK);
                let mut payload = synth::pes_header(stream_id, clock, dts);
                payload.resize(PACKET - 4, 0xAB);
                ts.extend_from_slice(&synth::packet(pid, true, *rai, cc, &payload));
                for k in 0..cont % 16 {
                    ts.extend_from_slice(&synth::packet(pid, false, false, cc + k, &[0x55; 184]));
                }
            }
            Op::Jump(to) => clock = to & PTS_MASK,
            Op::Null => ts.extend_from_slice(&synth::packet(0x1FFF, false, false, 0, &[0xFF; 184])),
            Op::Junk(bytes) => ts.extend_from_slice(&bytes[..bytes.len().min(2 * PACKET)]),
            Op::Truncate(n) => ts.truncate(ts.len().saturating_sub(usize::from(*n))),
            Op::FlipBit { back, bit } => {
                if let Some(i) = ts.len().checked_sub(1 + usize::from(*back))
                    && let Some(b) = ts.get_mut(i)
                {
                    *b ^= 1 << (bit & 7);
                }
            }
        }
    }
    ts
}

fuzz_target!(|case: Case| {
    let ts = build(&case);
    let target = Duration::from_millis(u64::from(case.target_ms));
    let chunks: Vec<usize> = case.chunks.iter().map(|&c| usize::from(c) % 1024).collect();
    if let Err(e) = check::stream_case(target, &ts, &chunks) {
        panic!("{e}");
    }
});
