//! 16-bit little-endian PCM streams cut into fixed frames, as voice clients
//! send them (push-to-talk over a WebSocket, Wyoming audio chunks).

/// 20 ms at 16 kHz.
pub const FRAME_SAMPLES_20MS: usize = 320;

/// Collects s16le bytes arriving in arbitrary pieces (odd lengths included)
/// and hands them out as frames of a fixed number of samples.
#[derive(Debug, Clone)]
pub struct PcmFramer {
    frame_samples: usize,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    read: usize,
}

impl PcmFramer {
    /// Frames of `frame_samples` samples (at least 1).
    pub fn new(frame_samples: usize) -> Self {
        PcmFramer { frame_samples: frame_samples.max(1), buf: Vec::new(), read: 0 }
    }

    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.read > 0 && self.read * 2 >= self.buf.len() {
            self.buf.drain(..self.read);
            self.read = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whole samples received but not yet handed out in a frame.
    pub fn pending_samples(&self) -> usize {
        (self.buf.len() - self.read) / 2
    }

    /// The next complete frame, if there is one.
    pub fn next_frame(&mut self) -> Option<Vec<i16>> {
        let need = self.frame_samples * 2;
        if self.buf.len() - self.read < need {
            return None;
        }
        let frame = decode_i16(&self.buf[self.read..self.read + need]);
        self.read += need;
        Some(frame)
    }

    /// Ends the stream: the remaining whole samples, zero-padded to a full
    /// frame (`None` if there are none); a dangling odd byte is dropped.
    pub fn finish(&mut self) -> Option<Vec<i16>> {
        let rest = self.pending_samples();
        let out = (rest > 0).then(|| {
            let mut frame = decode_i16(&self.buf[self.read..self.read + rest * 2]);
            frame.resize(self.frame_samples.max(rest), 0);
            frame
        });
        self.buf.clear();
        self.read = 0;
        out
    }
}

fn decode_i16(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

/// s16le bytes to `f32` samples in [-1, 1); a trailing odd byte is ignored.
pub fn s16le_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(2).map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32_768.0).collect()
}

/// `f32` samples to s16le bytes (rounded, clipped).
pub fn f32_to_s16le(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|&s| super::f32_to_i16(s).to_le_bytes()).collect()
}
