//! Codec facts from codec configuration records: H.264 avcC and its SPS, AAC AudioSpecificConfig.

use super::IndexError;
use super::source::Slice;

/// A video track's codec.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264 / AVC, with what its configuration record and first SPS say.
    H264(H264),
    /// H.265 / HEVC (MP4 `hvc1`/`hev1`, Matroska `V_MPEGH/ISO/HEVC`).
    Hevc,
    Vp8,
    Vp9,
    Av1,
    /// Anything else, by its sample entry type or Matroska CodecID.
    Other(String),
}

/// H.264 facts that decide whether a stream can be passed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264 {
    /// Sample entry: `avc1` (parameter sets only in avcC) or `avc3` (in band too); `V_MPEG4/ISO/AVC`
    /// in Matroska reads as `avc1`.
    pub entry: [u8; 4],
    /// `profile_idc` (66 baseline, 77 main, 100 high, 110 high 10, 122 high 4:2:2, 244 high 4:4:4).
    pub profile: u8,
    /// `level_idc` (for example 40 for level 4.0).
    pub level: u8,
    /// Luma bit depth (8 unless a high profile's SPS says otherwise); `None` without an SPS.
    pub bit_depth: Option<u8>,
    /// Chroma format; `None` without an SPS.
    pub chroma: Option<Chroma>,
    /// `frame_mbs_only_flag`: true means progressive only; `None` if the SPS could not be read that far.
    pub progressive: Option<bool>,
    /// Coded size in pixels (before cropping), when the SPS was read that far.
    pub coded_size: Option<(u32, u32)>,
}

/// H.264 `chroma_format_idc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    Monochrome,
    Yuv420,
    Yuv422,
    Yuv444,
}

/// An audio track's codec.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioCodec {
    /// MPEG-4 AAC with the AudioSpecificConfig's audio object type (2 = AAC-LC, 5 = HE-AAC SBR,
    /// 29 = HE-AACv2 PS); `None` if there was no readable AudioSpecificConfig.
    Aac { object_type: Option<u8> },
    /// Anything else: MP4 sample entry type or esds object type, or Matroska CodecID.
    Other(String),
}

impl AudioCodec {
    /// True for AAC-LC (object type 2), the AAC that HLS players take as it is.
    pub fn is_aac_lc(&self) -> bool {
        matches!(
            self,
            AudioCodec::Aac {
                object_type: Some(2)
            }
        )
    }
}

impl VideoCodec {
    /// Short name for logs and `/status`.
    pub fn name(&self) -> String {
        match self {
            VideoCodec::H264(h) => format!("h264 ({})", String::from_utf8_lossy(&h.entry)),
            VideoCodec::Hevc => "hevc".into(),
            VideoCodec::Vp8 => "vp8".into(),
            VideoCodec::Vp9 => "vp9".into(),
            VideoCodec::Av1 => "av1".into(),
            VideoCodec::Other(s) => s.clone(),
        }
    }
}

/// Reads an `AVCDecoderConfigurationRecord` (the avcC box body, or Matroska's CodecPrivate for
/// `V_MPEG4/ISO/AVC`) and its first SPS.
pub(super) fn parse_avcc(entry: [u8; 4], avcc: &[u8]) -> Result<H264, IndexError> {
    let mut s = Slice::new(avcc, "avcC");
    let _version = s.u8()?;
    let profile = s.u8()?;
    let _compat = s.u8()?;
    let level = s.u8()?;
    let _length_size = s.u8()?;
    let mut h = H264 {
        entry,
        profile,
        level,
        bit_depth: None,
        chroma: None,
        progressive: None,
        coded_size: None,
    };
    let num_sps = s.u8()? & 0x1F;
    if num_sps > 0 {
        let len = usize::from(s.u16()?);
        let nal = s.take(len)?;
        // A damaged SPS leaves the fields unknown; the record itself was fine.
        let _ = parse_sps(nal, &mut h);
    }
    Ok(h)
}

/// Most bytes of an SPS NAL unit looked at (real ones are tens of bytes).
const MAX_SPS_BYTES: usize = 1024;

/// Fills in what an SPS NAL unit says, as far as it can be read.
fn parse_sps(nal: &[u8], h: &mut H264) -> Result<(), IndexError> {
    let nal = &nal[..nal.len().min(MAX_SPS_BYTES)];
    if nal.first().map(|b| b & 0x1F) != Some(7) {
        return Err(IndexError::Malformed("SPS"));
    }
    // Remove emulation prevention bytes (00 00 03 -> 00 00).
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in &nal[1..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = Bits::new(&rbsp);
    let profile = r.bits(8)? as u8;
    r.bits(8)?; // constraint flags
    r.bits(8)?; // level
    r.ue()?; // seq_parameter_set_id
    let (mut chroma, mut depth) = (1, 8);
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma = r.ue()?;
        if chroma == 3 {
            r.bits(1)?; // separate_colour_plane_flag
        }
        depth = r.ue()?.saturating_add(8);
        r.ue()?; // bit_depth_chroma_minus8
        r.bits(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bits(1)? == 1 {
            let lists = if chroma == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1)? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    h.chroma = Some(match chroma {
        0 => Chroma::Monochrome,
        1 => Chroma::Yuv420,
        2 => Chroma::Yuv422,
        3 => Chroma::Yuv444,
        _ => return Err(IndexError::Malformed("SPS chroma")),
    });
    h.bit_depth = Some(u8::try_from(depth).map_err(|_| IndexError::Malformed("SPS depth"))?);
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bits(1)?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return Err(IndexError::Malformed("SPS"));
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bits(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()?.saturating_add(1);
    let height_units = r.ue()?.saturating_add(1);
    let frame_mbs_only = r.bits(1)? == 1;
    h.progressive = Some(frame_mbs_only);
    let height_mbs = height_units.saturating_mul(if frame_mbs_only { 1 } else { 2 });
    h.coded_size = Some((width_mbs.saturating_mul(16), height_mbs.saturating_mul(16)));
    Ok(())
}

fn skip_scaling_list(r: &mut Bits, size: u32) -> Result<(), IndexError> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// A big-endian bit reader with Exp-Golomb codes, bounded by its data.
struct Bits<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, bit: 0 }
    }

    fn bits(&mut self, n: u32) -> Result<u32, IndexError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self
                .data
                .get(self.bit / 8)
                .ok_or(IndexError::Malformed("SPS truncated"))?;
            v = v << 1 | u32::from(byte >> (7 - self.bit % 8) & 1);
            self.bit += 1;
        }
        Ok(v)
    }

    fn ue(&mut self) -> Result<u32, IndexError> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(IndexError::Malformed("SPS Exp-Golomb code"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    fn se(&mut self) -> Result<i64, IndexError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// The audio object type of an MPEG-4 AudioSpecificConfig (5 bits, 31 escapes to 32 + 6 bits).
pub(super) fn aac_object_type(asc: &[u8]) -> Option<u8> {
    let mut r = Bits::new(asc);
    let t = r.bits(5).ok()? as u8;
    if t == 31 {
        return Some(32 + r.bits(6).ok()? as u8);
    }
    Some(t)
}

/// Most descriptors walked in one esds (a real one has three).
const MAX_DESCRIPTORS: usize = 16;

/// The audio codec an MP4 `esds` body (after its version/flags) describes: the
/// DecoderConfigDescriptor's objectTypeIndication, and for AAC (0x40, or the MPEG-2 AAC 0x66-0x68)
/// the AudioSpecificConfig's object type.
pub(super) fn parse_esds(body: &[u8]) -> AudioCodec {
    let mut s = Slice::new(body, "esds");
    let mut oti = None;
    for _ in 0..MAX_DESCRIPTORS {
        let Ok(tag) = s.u8() else { break };
        let Some(len) = descriptor_len(&mut s) else {
            break;
        };
        match tag {
            // ES_Descriptor: ES_ID, flags, then optional fields, then nested descriptors.
            0x03 => {
                let Ok(_es_id) = s.u16() else { break };
                let Ok(flags) = s.u8() else { break };
                let mut skip = 0;
                if flags & 0x80 != 0 {
                    skip += 2;
                }
                if flags & 0x20 != 0 {
                    let Ok(n) = s.clone().u8() else { break };
                    skip += 1 + usize::from(n);
                }
                if flags & 0x40 != 0 {
                    skip += 2;
                }
                if s.skip(skip).is_err() {
                    break;
                }
            }
            // DecoderConfigDescriptor: objectTypeIndication, then 12 bytes, then nested.
            0x04 => {
                let Ok(o) = s.u8() else { break };
                oti = Some(o);
                if s.skip(12).is_err() {
                    break;
                }
            }
            // DecoderSpecificInfo: the AudioSpecificConfig.
            0x05 => {
                let asc = s.take(len).unwrap_or(&[]);
                return match oti {
                    Some(0x40 | 0x66..=0x68) => AudioCodec::Aac {
                        object_type: aac_object_type(asc),
                    },
                    Some(o) => AudioCodec::Other(format!("mp4a object type 0x{o:02x}")),
                    None => AudioCodec::Other("mp4a".into()),
                };
            }
            _ => {
                if s.skip(len).is_err() {
                    break;
                }
            }
        }
    }
    match oti {
        Some(0x40 | 0x66..=0x68) => AudioCodec::Aac { object_type: None },
        Some(o) => AudioCodec::Other(format!("mp4a object type 0x{o:02x}")),
        None => AudioCodec::Other("mp4a".into()),
    }
}

/// An MPEG-4 descriptor's length: up to four bytes of 7 bits each.
fn descriptor_len(s: &mut Slice) -> Option<usize> {
    let mut len = 0usize;
    for _ in 0..4 {
        let b = s.u8().ok()?;
        len = len << 7 | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            return Some(len);
        }
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_high_profile_sps() {
        // x264 High profile 320x240 SPS (avcC from an ffmpeg-made MP4).
        let avcc = [
            0x01, 0x64, 0x00, 0x0D, 0xFF, 0xE1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0D, 0xAC, 0xD9,
            0x41, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03,
            0x20, 0xF1, 0x42, 0x99, 0x60, 0x01, 0x00, 0x06, 0x68, 0xEB, 0xE3, 0xCB, 0x22, 0xC0,
        ];
        let h = parse_avcc(*b"avc1", &avcc).unwrap();
        assert_eq!((h.profile, h.level), (100, 13));
        assert_eq!(h.bit_depth, Some(8));
        assert_eq!(h.chroma, Some(Chroma::Yuv420));
        assert_eq!(h.progressive, Some(true));
        assert_eq!(h.coded_size, Some((320, 240)));
    }

    #[test]
    fn aac_object_types() {
        assert_eq!(aac_object_type(&[0x12, 0x10]), Some(2));
        assert_eq!(aac_object_type(&[0xF8, 0x00]), Some(32));
        assert_eq!(aac_object_type(&[]), None);
        assert!(
            AudioCodec::Aac {
                object_type: Some(2)
            }
            .is_aac_lc()
        );
    }

    #[test]
    fn damaged_records_do_not_panic() {
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 1) as u8).collect();
            let _ = parse_avcc(*b"avc1", &junk);
            let _ = parse_esds(&junk);
            let mut h = parse_avcc(*b"avc1", &[1, 100, 0, 40, 0xFF, 0]).unwrap();
            let mut nal = vec![0x67];
            nal.extend(&junk);
            let _ = parse_sps(&nal, &mut h);
        }
    }
}
