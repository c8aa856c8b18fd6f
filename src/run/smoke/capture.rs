//! A check's output as it streams in: its head and tail kept in memory (at most 1 MiB in all, nothing on disk), its length, and whether a text appeared anywhere in it, even across two reads.

use std::collections::VecDeque;

/// Bytes kept from the start of the output.
const HEAD: usize = 512 * 1024;
/// Bytes kept from the end of the output.
const TAIL: usize = 512 * 1024;

/// The output of one run, however long it was.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
    needle: Option<Vec<u8>>,
    found: bool,
    /// The last `needle.len() - 1` bytes seen, so a match that spans two
    /// reads is found.
    carry: Vec<u8>,
}

impl Capture {
    /// A capture that also looks for `needle`.
    pub fn new(needle: Option<&str>) -> Capture {
        let needle = needle.filter(|n| !n.is_empty()).map(|n| n.as_bytes().to_vec());
        Capture { found: needle.is_none(), needle, ..Capture::default() }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        self.look(bytes);
        let to_head = bytes.len().min(HEAD - self.head.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        let rest = &bytes[to_head..];
        let keep = rest.len().min(TAIL);
        let overflow = (self.tail.len() + keep).saturating_sub(TAIL);
        self.tail.drain(..overflow);
        self.tail.extend(&rest[rest.len() - keep..]);
    }

    fn look(&mut self, bytes: &[u8]) {
        let Some(needle) = &self.needle else { return };
        if self.found {
            return;
        }
        let keep = needle.len() - 1;
        // What the last read left, and the start of this one: a match
        // across the boundary is in there.
        let mut edge = std::mem::take(&mut self.carry);
        edge.extend_from_slice(&bytes[..bytes.len().min(keep)]);
        if memchr::memmem::find(&edge, needle).is_some()
            || memchr::memmem::find(bytes, needle).is_some()
        {
            self.found = true;
            return;
        }
        self.carry = if bytes.len() >= keep {
            bytes[bytes.len() - keep..].to_vec()
        } else {
            edge[edge.len().saturating_sub(keep)..].to_vec()
        };
    }

    /// Whether the text looked for appeared (true when none was asked for).
    pub fn found(&self) -> bool {
        self.found
    }

    /// Bytes the run printed in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether nothing of the output was left out.
    pub fn is_whole(&self) -> bool {
        self.total == (self.head.len() + self.tail.len()) as u64
    }

    /// The output as text: all of it, or its head and tail around a line
    /// that says how much was left out.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        let kept = (self.head.len() + self.tail.len()) as u64;
        if self.total > kept {
            text.push_str(&format!("\n[... {} bytes not kept ...]\n", self.total - kept));
        }
        let (a, b) = self.tail.as_slices();
        let tail: Vec<u8> = a.iter().chain(b).copied().collect();
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_split_across_reads_is_found_and_memory_stays_bounded() {
        let mut capture = Capture::new(Some("THE-END"));
        let block = vec![b'x'; 1 << 20];
        for _ in 0..20 {
            capture.push(&block);
        }
        capture.push(b"...THE-");
        assert!(!capture.found());
        capture.push(b"END\n");
        assert!(capture.found());
        assert_eq!(capture.total(), 20 * (1 << 20) + 11);
        let text = capture.text();
        assert!(text.len() <= HEAD + TAIL + 64, "{}", text.len());
        assert!(text.ends_with("THE-END\n"));
        assert!(text.contains("bytes not kept"));
        let mut small = Capture::new(None);
        small.push(b"hello\n");
        assert!(small.found());
        assert_eq!(small.text(), "hello\n");
    }
}
