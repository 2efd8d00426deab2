//! A small ustar reader and writer: regular files only, names up to 100 bytes. Enough for
//! Hearth's archives, which `tar -tzf` and `tar -xzf` also read.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// Writes regular files into a tar stream.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Appends a file of `size` bytes read from `data`; returns the sha256 (hex) of what was
    /// written. Fails if `data` holds fewer or more bytes than `size` (a file that changed).
    pub fn append(
        &mut self,
        name: &str,
        mode: u32,
        mtime: i64,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<String> {
        self.out.write_all(&header(name, mode, mtime, size)?)?;
        let mut hasher = Sha::default();
        let copied = io::copy(&mut data.take(size), &mut Tee { out: &mut self.out, hasher: &mut hasher })?;
        if copied != size || data.read(&mut [0u8; 1])? != 0 {
            return Err(io::Error::other(format!("{name} changed size while it was archived")));
        }
        self.pad(size)?;
        Ok(hasher.hex())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rest = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..rest])
    }

    /// Writes the end-of-archive marker and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; BLOCK * 2])?;
        Ok(self.out)
    }
}

fn header(name: &str, mode: u32, mtime: i64, size: u64) -> io::Result<[u8; BLOCK]> {
    if name.len() > 100 || name.is_empty() {
        return Err(io::Error::other(format!("member name '{name}' must be 1 to 100 bytes")));
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime.max(0) as u64);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Ok(h)
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn parse_octal(field: &[u8]) -> io::Result<u64> {
    let text: String =
        field.iter().take_while(|&&b| b != 0).map(|&b| b as char).collect::<String>().trim().to_string();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(&text, 8).map_err(|_| bad("a header number is not octal"))
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not a valid archive: {why}"))
}

/// One member as read: its name, mode and size.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub size: u64,
}

/// Reads a tar stream member by member.
pub struct Reader<R: Read> {
    input: R,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Self {
        Self { input }
    }

    /// The next member's header, or `None` at the end marker. The caller must then read
    /// exactly `size` bytes through [`Reader::body`].
    pub fn next(&mut self) -> io::Result<Option<Entry>> {
        let mut h = [0u8; BLOCK];
        self.input.read_exact(&mut h).map_err(|_| bad("it ends before its end marker (cut short?)"))?;
        if h.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let stored = parse_octal(&h[148..156])?;
        let mut copy = h;
        copy[148..156].copy_from_slice(b"        ");
        let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
        if sum != stored {
            return Err(bad("a header's checksum is wrong"));
        }
        if h[156] != b'0' && h[156] != 0 {
            return Err(bad("it holds something other than plain files"));
        }
        let end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&h[..end]).map_err(|_| bad("a name is not UTF-8"))?.to_string();
        Ok(Some(Entry { name, mode: parse_octal(&h[100..108])? as u32, size: parse_octal(&h[124..136])? }))
    }

    /// Copies the current member's bytes (of `entry`) into `out`; returns their sha256 (hex).
    pub fn body(&mut self, entry: &Entry, out: &mut dyn Write) -> io::Result<String> {
        let mut hasher = Sha::default();
        let copied =
            io::copy(&mut (&mut self.input).take(entry.size), &mut Tee { out, hasher: &mut hasher })?;
        if copied != entry.size {
            return Err(bad("a member is cut short"));
        }
        let rest = (BLOCK - (entry.size as usize % BLOCK)) % BLOCK;
        self.input.read_exact(&mut vec![0u8; rest]).map_err(|_| bad("a member is cut short"))?;
        Ok(hasher.hex())
    }
}

#[derive(Default)]
struct Sha(sha2::Sha256);

impl Sha {
    fn hex(self) -> String {
        use sha2::Digest;
        hex::encode(self.0.finalize())
    }
}

/// Writes through to `out` and hashes what passes.
struct Tee<'a, W: Write + ?Sized> {
    out: &'a mut W,
    hasher: &'a mut Sha,
}

impl<W: Write + ?Sized> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = self.out.write(buf)?;
        self.hasher.0.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_gnu_tar_reads_them() {
        let mut w = Writer::new(Vec::new());
        let a = b"hello".to_vec();
        let b = vec![7u8; 1300];
        let sha_a = w.append("a.txt", 0o644, 1, 5, &mut a.as_slice()).unwrap();
        w.append("dir/b.bin", 0o600, 1, 1300, &mut b.as_slice()).unwrap();
        assert!(w.append("short", 0o600, 1, 10, &mut &b"abc"[..]).is_err(), "a size that lies is refused");
        let mut w = Writer::new(Vec::new());
        w.append("a.txt", 0o644, 1, 5, &mut a.as_slice()).unwrap();
        w.append("dir/b.bin", 0o600, 1, 1300, &mut b.as_slice()).unwrap();
        let bytes = w.finish().unwrap();

        let mut r = Reader::new(bytes.as_slice());
        let first = r.next().unwrap().unwrap();
        assert_eq!((first.name.as_str(), first.size, first.mode), ("a.txt", 5, 0o644));
        let mut out = Vec::new();
        assert_eq!(r.body(&first, &mut out).unwrap(), sha_a);
        assert_eq!(out, a);
        let second = r.next().unwrap().unwrap();
        let mut out = Vec::new();
        r.body(&second, &mut out).unwrap();
        assert_eq!(out, b);
        assert!(r.next().unwrap().is_none());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar");
        std::fs::write(&path, &bytes).unwrap();
        let listed = std::process::Command::new("tar").arg("-tvf").arg(&path).output().unwrap();
        assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(text.contains("a.txt") && text.contains("dir/b.bin"), "{text}");
    }

    #[test]
    fn a_damaged_header_or_a_cut_archive_is_an_error() {
        let mut w = Writer::new(Vec::new());
        w.append("a.txt", 0o644, 1, 5, &mut &b"hello"[..]).unwrap();
        let bytes = w.finish().unwrap();
        let mut damaged = bytes.clone();
        damaged[3] ^= 1;
        assert!(Reader::new(damaged.as_slice()).next().unwrap_err().to_string().contains("checksum"));
        let mut r = Reader::new(&bytes[..1024]);
        let e = r.next().unwrap().unwrap();
        assert!(r.body(&e, &mut Vec::new()).is_ok());
        assert!(r.next().is_err(), "no end marker: cut short");
    }
}
