//! The duration of an uploaded audio file, read from its headers, for transcriptions priced per
//! second whose answer states none (`response_format: text`; `srt`/`vtt` answers whose cues end
//! before the audio does).
//!
//! LiteLLM decodes the file with `soundfile` (libsndfile: WAV, FLAC, OGG, MP3) and measures the
//! samples. llmgate reads only headers, in a few hundred bytes, with no decoder:
//!
//! | format | read from |
//! | --- | --- |
//! | WAV (RIFF) | the `fmt ` chunk's byte rate and the `data` chunk's size |
//! | FLAC | `STREAMINFO`: total samples / sample rate |
//! | OGG (Vorbis, Opus) | the last page's granule position / the rate (Opus: 48 kHz, less the pre-skip) |
//! | MP4 / M4A / MOV | the `moov`/`mvhd` box: duration / time scale |
//! | MP3 | a Xing/Info/VBRI frame count × samples per frame / rate; else (CBR) the audio bytes × 8 / the first frame's bit rate |
//!
//! Anything else (WebM, a truncated or unrecognised file) is `None`: the call is then priced at
//! what the answer states, as before.

/// The file's duration in milliseconds, when its headers say.
#[must_use]
pub(crate) fn duration_ms(data: &[u8]) -> Option<u64> {
    let secs = if data.starts_with(b"RIFF") && data.get(8..12) == Some(b"WAVE") {
        wav(data)
    } else if data.starts_with(b"fLaC") {
        flac(data)
    } else if data.starts_with(b"OggS") {
        ogg(data)
    } else if data.get(4..8) == Some(b"ftyp") {
        mp4(data)
    } else {
        mp3(data)
    }?;
    (secs.is_finite() && secs > 0.0 && secs < 1.0e7).then(|| {
        // Below 1e10 ms: far inside u64.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = (secs * 1000.0).round() as u64;
        ms
    })
}

fn u16_le(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_le(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn u32_be(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn u64_be(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

fn u64_le(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

#[allow(clippy::cast_precision_loss)] // durations, not money: f64 is plenty
fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// WAV: chunks after `RIFF....WAVE`; `fmt ` holds the byte rate at offset 8, `data` its size.
fn wav(d: &[u8]) -> Option<f64> {
    let mut at = 12;
    let mut byte_rate = None;
    while let Some(size) = u32_le(d, at + 4) {
        let id = d.get(at..at + 4)?;
        if id == b"fmt " {
            byte_rate = u32_le(d, at + 16);
        } else if id == b"data" {
            // A streamed WAV states 0 or u32::MAX: count the bytes that came.
            let len = if size == 0 || size == u32::MAX {
                d.len().saturating_sub(at + 8)
            } else {
                usize::try_from(size).ok()?
            };
            return ratio(u64::try_from(len).ok()?, u64::from(byte_rate?));
        }
        at = at
            .checked_add(8)?
            .checked_add(usize::try_from(size).ok()?)?
            .checked_add(usize::try_from(size % 2).ok()?)?;
    }
    None
}

/// FLAC: `fLaC`, then the STREAMINFO block: sample rate (20 bits) and total samples (36 bits)
/// at bytes 18..26 of the file.
fn flac(d: &[u8]) -> Option<f64> {
    let b = d.get(18..26)?;
    let rate = (u64::from(b[0]) << 12) | (u64::from(b[1]) << 4) | (u64::from(b[2]) >> 4);
    let samples = (u64::from(b[3] & 0x0f) << 32) | u64::from(u32_be(b, 4)?);
    ratio(samples, rate)
}

/// OGG: the rate from the first packet (Vorbis identification header, or `OpusHead`), the
/// length from the granule position of the last page.
fn ogg(d: &[u8]) -> Option<f64> {
    // The first page's header is 27 bytes plus its segment table.
    let segments = usize::from(*d.get(26)?);
    let packet = d.get(27 + segments..)?;
    let (rate, skip) = if packet.starts_with(b"\x01vorbis") {
        (u64::from(u32_le(packet, 12)?), 0)
    } else if packet.starts_with(b"OpusHead") {
        (48_000, u64::from(u16_le(packet, 10)?))
    } else {
        return None;
    };
    let last = d.windows(4).rposition(|w| w == b"OggS")?;
    let granule = u64_le(d, last + 6)?;
    ratio(granule.saturating_sub(skip), rate)
}

/// MP4 / M4A: the top-level `moov` box, its `mvhd`: time scale and duration (version 0: 32-bit,
/// version 1: 64-bit).
fn mp4(d: &[u8]) -> Option<f64> {
    let moov = find_box(d, b"moov")?;
    let mvhd = find_box(moov, b"mvhd")?;
    if *mvhd.first()? == 1 {
        ratio(u64_be(mvhd, 24)?, u64::from(u32_be(mvhd, 20)?))
    } else {
        ratio(u64::from(u32_be(mvhd, 16)?), u64::from(u32_be(mvhd, 12)?))
    }
}

/// The body of the first box named `name` among the boxes of `d`.
fn find_box<'a>(d: &'a [u8], name: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 0_usize;
    while let Some(size) = u32_be(d, at) {
        let (head, len) = match size {
            1 => (16, usize::try_from(u64_be(d, at + 8)?).ok()?),
            0 => (8, d.len() - at),
            n => (8, usize::try_from(n).ok()?),
        };
        if len < head {
            return None;
        }
        if d.get(at + 4..at + 8)? == name {
            return d.get(at + head..(at + len).min(d.len()));
        }
        at = at.checked_add(len)?;
    }
    None
}

/// MP3: skip an ID3v2 tag, read the first frame header; a Xing/Info (or VBRI) header gives the
/// frame count, else the stream is taken as constant bit rate.
fn mp3(d: &[u8]) -> Option<f64> {
    let mut at = 0;
    if d.starts_with(b"ID3") {
        let b = d.get(6..10)?;
        let size = b
            .iter()
            .fold(0_usize, |acc, &x| (acc << 7) | usize::from(x & 0x7f));
        at = 10 + size + if d.get(5)? & 0x10 != 0 { 10 } else { 0 };
    }
    // The first frame sync within a few kB.
    let end = d.len().min(at + 8192);
    let start = (at..end.saturating_sub(4)).find(|&i| d[i] == 0xff && d[i + 1] & 0xe0 == 0xe0)?;
    let h = u32_be(d, start)?;
    let version = (h >> 19) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    let layer = (h >> 17) & 3; // 1: layer III
    let bitrate_index = usize::try_from((h >> 12) & 0xf).ok()?;
    let rate_index = usize::try_from((h >> 10) & 3).ok()?;
    if layer != 1 || version == 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let mpeg1 = version == 3;
    const RATES: [u64; 3] = [44_100, 48_000, 32_000];
    let rate = RATES[rate_index]
        >> if mpeg1 {
            0
        } else if version == 2 {
            1
        } else {
            2
        };
    const KBPS_V1: [u64; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const KBPS_V2: [u64; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let kbps = if mpeg1 { KBPS_V1 } else { KBPS_V2 }[bitrate_index];
    let samples_per_frame: u64 = if mpeg1 { 1152 } else { 576 };
    let mono = (h >> 6) & 3 == 3;
    let side = match (mpeg1, mono) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    };
    let xing = start + 4 + side;
    let frames = match d.get(xing..xing + 4) {
        Some(b"Xing" | b"Info") if u32_be(d, xing + 4)? & 1 == 1 => Some(u32_be(d, xing + 8)?),
        _ => match d.get(start + 36..start + 40) {
            Some(b"VBRI") => Some(u32_be(d, start + 36 + 14)?),
            _ => None,
        },
    };
    if let Some(frames) = frames {
        return ratio(u64::from(frames) * samples_per_frame, rate);
    }
    let audio_bytes = u64::try_from(d.len() - start).ok()?;
    ratio(audio_bytes * 8, kbps * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCM WAV of `secs` seconds at 16 kHz, 16-bit mono, with a `LIST` chunk before `data`.
    fn wav_file(secs: u32) -> Vec<u8> {
        let data_len = secs * 16_000 * 2;
        let mut v = b"RIFF\0\0\0\0WAVE".to_vec();
        v.extend_from_slice(b"fmt \x10\0\0\0\x01\0\x01\0");
        v.extend_from_slice(&16_000_u32.to_le_bytes());
        v.extend_from_slice(&32_000_u32.to_le_bytes());
        v.extend_from_slice(b"\x02\0\x10\0");
        v.extend_from_slice(b"LIST\x03\0\0\0abc\0");
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        v.resize(v.len() + data_len as usize, 0);
        v
    }

    #[test]
    fn wav_duration_from_byte_rate_and_data_size() {
        assert_eq!(duration_ms(&wav_file(3)), Some(3000));
        // A streamed WAV (data size 0): the bytes that came.
        let mut streamed = wav_file(2);
        let at = streamed.windows(4).position(|w| w == b"data").unwrap();
        streamed[at + 4..at + 8].copy_from_slice(&0_u32.to_le_bytes());
        assert_eq!(duration_ms(&streamed), Some(2000));
        assert_eq!(duration_ms(&wav_file(3)[..40]), None);
    }

    #[test]
    fn flac_duration_from_streaminfo() {
        let mut v = b"fLaC\x00\x00\x00\x22".to_vec();
        v.extend_from_slice(&[0x10, 0x00, 0x10, 0x00, 0, 0, 0, 0, 0, 0]);
        // 44100 Hz, stereo, 16 bits, 220500 samples (5 s).
        let rate: u64 = 44_100;
        let samples: u64 = 220_500;
        let packed: u64 = (rate << 44) | (1 << 41) | (15 << 36) | samples;
        v.extend_from_slice(&packed.to_be_bytes());
        v.extend_from_slice(&[0; 16]);
        assert_eq!(duration_ms(&v), Some(5000));
    }

    fn ogg_page(granule: u64, packet: &[u8]) -> Vec<u8> {
        let mut v = b"OggS\0\0".to_vec();
        v.extend_from_slice(&granule.to_le_bytes());
        v.extend_from_slice(&[0; 12]);
        v.push(1);
        v.push(u8::try_from(packet.len()).unwrap());
        v.extend_from_slice(packet);
        v
    }

    #[test]
    fn ogg_duration_from_the_last_granule() {
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&312_u16.to_le_bytes());
        head.extend_from_slice(&48_000_u32.to_le_bytes());
        let mut v = ogg_page(0, &head);
        v.extend(ogg_page(96_312, b"audio"));
        assert_eq!(duration_ms(&v), Some(2000));
        let mut vorbis = b"\x01vorbis\0\0\0\0\x01".to_vec();
        vorbis.extend_from_slice(&22_050_u32.to_le_bytes());
        let mut v = ogg_page(0, &vorbis);
        v.extend(ogg_page(33_075, b"x"));
        assert_eq!(duration_ms(&v), Some(1500));
    }

    #[test]
    fn mp4_duration_from_mvhd() {
        let mut mvhd = vec![0_u8; 4 + 8];
        mvhd.extend_from_slice(&1000_u32.to_be_bytes());
        mvhd.extend_from_slice(&7_250_u32.to_be_bytes());
        mvhd.resize(100, 0);
        let mut moov = (8 + u32::try_from(mvhd.len()).unwrap())
            .to_be_bytes()
            .to_vec();
        moov.extend_from_slice(b"mvhd");
        moov.extend_from_slice(&mvhd);
        let mut v = b"\0\0\0\x18ftypM4A \0\0\0\0M4A isom".to_vec();
        v.extend_from_slice(b"\0\0\0\x10free\0\0\0\0\0\0\0\0");
        v.extend_from_slice(&(8 + u32::try_from(moov.len()).unwrap()).to_be_bytes());
        v.extend_from_slice(b"moov");
        v.extend_from_slice(&moov);
        assert_eq!(duration_ms(&v), Some(7250));
    }

    #[test]
    fn mp3_duration_from_xing_or_constant_bit_rate() {
        // MPEG-1 layer III, 128 kbps, 44.1 kHz, stereo: 0xFFFB9000.
        let frame = |pad: usize| {
            let mut f = vec![0xff, 0xfb, 0x90, 0x00];
            f.resize(pad, 0);
            f
        };
        // CBR: 16 000 bytes at 128 kbps = 1 s, after an ID3 tag of 10 bytes.
        let mut v = b"ID3\x04\0\0\0\0\0\x0a".to_vec();
        v.extend_from_slice(&[0; 10]);
        v.extend(frame(16_000));
        assert_eq!(duration_ms(&v), Some(1000));
        // Xing: 38 frames of 1152 samples at 44.1 kHz.
        let mut x = frame(36);
        x.extend_from_slice(b"Xing\0\0\0\x01");
        x.extend_from_slice(&38_u32.to_be_bytes());
        x.resize(417, 0);
        assert_eq!(duration_ms(&x), Some(993));
        assert_eq!(duration_ms(b"not audio at all"), None);
        assert_eq!(duration_ms(&[]), None);
        assert_eq!(duration_ms(&[0xff, 0xfb]), None);
    }
}
